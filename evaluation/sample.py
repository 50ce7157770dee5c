"""Generate talking-avatar videos from a DiT checkpoint: reference image + audio + phased prompt -> frames.

A checkpoint for sampling is a DiT folder written by `train.pretrained.save_dit` (config.json +
model.safetensors) plus the three encoders (Wan VAE, UMT5, wav2vec2), each a local folder or a
Hugging Face id. `resolve_checkpoint` finds them in the layout `actavatar models tiny --out M`
writes (M/dit, M/vae, M/umt5, M/wav2vec2); anything else is named in `SampleConfig`.

Reference image conditioning follows the DiT's input width: in_channels = 2z + stride is Wan2.1 I2V
(channel-concatenated [mask | image latents]); in_channels = z is Wan2.2 TI2V style (latent frame 0
replaced by the image latent, its tokens at timestep 0). The model math lives in `model/`, the ODE
math in `evaluation/sampler.py`; this module wires them together.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluation.sampler import SamplerConfig, guided_velocity, integrate, sigma_schedule

AUDIO_RATE = 16000
REFERENCE_MODES = ("auto", "i2v", "ti2v", "none")
AUDIO_UNCOND = ("zeros", "drop")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# sub-folder names searched for each encoder next to a checkpoint (first match wins)
ENCODER_DIRS = {"vae": ("vae",), "text_encoder": ("umt5", "text_encoder"), "audio_encoder": ("wav2vec2", "audio_encoder")}
AUDIO_LAYERS_FILE = "audio_encoder.safetensors"  # optional trained AudioEncoder.layer_logits beside the DiT


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleConfig:
    """Args:
        dit: DiT folder (save_dit format). Empty: taken from --checkpoint.
        vae, text_encoder, audio_encoder: local folder or HF id of each encoder; empty: found next to
            the checkpoint (vae/, umt5/ or text_encoder/, wav2vec2/ or audio_encoder/).
        audio_layers: safetensors with the trained `layer_logits` of the AudioEncoder; empty: the DiT
            folder's audio_encoder.safetensors when present, else uniform layer weights.
        device: torch device; dtype: DiT/encoder weights dtype (float32, bfloat16, float16).
        width, height: output size in pixels (multiples of VAE stride x patch size, e.g. 16).
        num_frames: video frames (1 + 4k); 0 = as long as the audio allows, capped at max_frames.
        max_frames: cap when num_frames = 0.
        fps: output frame rate (the model's training rate, 25).
        seed: noise seed of the first sample; a batch uses seed + index unless a job names its own.
        max_base_tokens, max_phase_tokens: text truncation per block; use the training values
            (train `encoders.max_base_tokens` / `max_phase_tokens`).
        audio_context_s: audio context on each side of a latent frame (train `encoders.audio_context_s`).
        negative_prompt: the text of the unconditional branch (base block only, no phases).
        audio_uncond: unconditional audio for audio guidance: "zeros" (zero wav2vec2 features, matches
            training with zeroed-audio dropout) or "drop" (no audio attention at all).
        reference: image conditioning: auto (from the DiT's in_channels), i2v, ti2v, none.
        crf: x264 quality of the written mp4.
        threads: torch intra-op CPU threads while sampling (0 = leave torch's setting); tiny models run
            several times faster on 1 thread (thread hand-off costs more than their small matmuls).
        sampler: steps, solver, shift and guidance (evaluation/sampler.py).
    """

    dit: str = ""
    vae: str = ""
    text_encoder: str = ""
    audio_encoder: str = ""
    audio_layers: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    width: int = 256
    height: int = 256
    num_frames: int = 0
    max_frames: int = 81
    fps: float = 25.0
    seed: int = 0
    max_base_tokens: int = 256
    max_phase_tokens: int = 32
    audio_context_s: float = 0.04
    negative_prompt: str = ""
    audio_uncond: str = "zeros"
    reference: str = "auto"
    crf: int = 20
    threads: int = 0
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"sample.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for key in ("width", "height"):
            value = getattr(self, key)
            if value < 16 or value % 16:
                raise ValueError(f"sample.{key} must be a multiple of 16 and >= 16, got {value}")
        if self.num_frames < 0 or (self.num_frames and (self.num_frames - 1) % 4):
            raise ValueError(f"sample.num_frames must be 0 (from the audio) or 1 + 4k, got {self.num_frames}")
        if self.max_frames < 1:
            raise ValueError(f"sample.max_frames must be >= 1, got {self.max_frames}")
        if self.fps <= 0:
            raise ValueError(f"sample.fps must be > 0, got {self.fps}")
        if self.audio_uncond not in AUDIO_UNCOND:
            raise ValueError(f"sample.audio_uncond must be one of {AUDIO_UNCOND}, got {self.audio_uncond!r}")
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"sample.reference must be one of {REFERENCE_MODES}, got {self.reference!r}")
        for key in ("max_base_tokens", "max_phase_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"sample.{key} must be >= 1, got {getattr(self, key)}")
        if self.audio_context_s < 0:
            raise ValueError(f"sample.audio_context_s must be >= 0, got {self.audio_context_s}")
        if self.threads < 0:
            raise ValueError(f"sample.threads must be >= 0 (0 = torch default), got {self.threads}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"sample.crf must be in 0..51, got {self.crf}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise ValueError(f"sample.device must be cpu, cuda[:N] or mps, got {self.device!r}")


def resolve_checkpoint(cfg: SampleConfig, checkpoint: str | Path | None = None, encoders: str | Path | None = None) -> SampleConfig:
    """Fill dit / encoder paths from a checkpoint folder: CKPT (save_dit folder) or CKPT/dit; encoders
    from ENCODERS/<name>, CKPT/<name> or the DiT folder's parent (e.g. a trainer's OUT/final plus
    `--encoders M` from `actavatar models tiny --out M`). Values already set in `cfg` win."""
    dit = Path(cfg.dit) if cfg.dit else None
    if checkpoint is not None:
        root = Path(checkpoint)
        if (root / "config.json").is_file():
            dit = root
        elif (root / "dit" / "config.json").is_file():
            dit = root / "dit"
        else:
            raise FileNotFoundError(f"checkpoint {root}: neither {root}/config.json nor {root}/dit/config.json "
                                    "(expected a folder written by save_dit, or `actavatar models tiny --out` output)")
    if dit is None:
        raise ValueError("no DiT given: pass --checkpoint CKPT or dit=PATH")
    if not (dit / "config.json").is_file():
        raise FileNotFoundError(f"{dit}: no config.json (expected a DiT folder written by save_dit)")
    found: dict[str, str] = {"dit": str(dit)}
    for key, names in ENCODER_DIRS.items():
        if getattr(cfg, key):
            continue
        bases = [Path(p) for p in (encoders, checkpoint) if p is not None] + [dit, dit.parent]
        where = [base / n for base in dict.fromkeys(bases) for n in names]
        hit = next((p for p in where if p.is_dir()), None)
        if hit is None:
            raise FileNotFoundError(f"no {key} for checkpoint {dit}: looked for {', '.join(map(str, where))}; "
                                    f"pass {key}=PATH (a local folder or a Hugging Face id)")
        found[key] = str(hit)
    if not cfg.audio_layers and (dit / AUDIO_LAYERS_FILE).is_file():
        found["audio_layers"] = str(dit / AUDIO_LAYERS_FILE)
    return dataclasses.replace(cfg, **found)


def frame_count(cfg: SampleConfig, num_audio_samples: int, requested: int = 0, stride: int = 4) -> int:
    """Video frames to generate: requested / cfg.num_frames, else what the audio covers (<= max_frames),
    rounded down to 1 + stride·k."""
    n = requested or cfg.num_frames
    if not n:
        n = min(int(num_audio_samples / AUDIO_RATE * cfg.fps + 1e-6), cfg.max_frames)
        n = (n - 1) // stride * stride + 1
        if n < 1 + stride:
            raise ValueError(f"audio of {num_audio_samples / AUDIO_RATE:.2f} s is too short for {1 + stride} frames at {cfg.fps} fps")
    elif (n - 1) % stride:
        raise ValueError(f"num_frames must be 1 + {stride}k, got {n}")
    return n


def fit_audio(audio: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Trim or zero-pad 16 kHz audio to the video's length."""
    n = int(round(num_frames / fps * AUDIO_RATE))
    out = np.zeros(n, np.float32)
    out[: min(n, audio.size)] = audio[:n]
    return out


def image_tensor(image: np.ndarray, width: int, height: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, height, width) in [-1, 1]: scale to cover, then centre crop."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    scale = max(width / img.width, height / img.height)
    size = (max(width, math.ceil(img.width * scale)), max(height, math.ceil(img.height * scale)))
    img = img.resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    arr = np.asarray(img.crop((left, top, left + width, top + height)), dtype=np.float32)
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1)[None]


class AvatarSampler:
    """Loads the DiT and encoders once; `__call__` turns one prompt into frames.

    Args:
        cfg: a SampleConfig whose paths are resolved (see `resolve_checkpoint`).
    """

    def __init__(self, cfg: SampleConfig) -> None:
        from train.pretrained import load_audio_encoder, load_dit, load_text_encoder, load_vae

        self.cfg = cfg
        dtype = DTYPES[cfg.dtype]
        self.dit = load_dit(cfg.dit, device=cfg.device, dtype=dtype).eval()
        mcfg = self.dit.config
        self.vae = load_vae(cfg.vae, device=cfg.device)  # the VAE stays fp32: decode quality
        self.text = load_text_encoder(cfg.text_encoder, device=cfg.device, dtype=dtype, max_length=mcfg.text_len,
                                      max_base_tokens=cfg.max_base_tokens, max_phase_tokens=cfg.max_phase_tokens)
        self.audio = load_audio_encoder(cfg.audio_encoder, device=cfg.device, dtype=dtype) if mcfg.audio is not None else None
        if self.audio is not None and cfg.audio_layers:
            from safetensors.torch import load_file

            self.audio.load_state_dict(load_file(cfg.audio_layers), strict=False)
        self._check(mcfg)
        self.mode = self._reference_mode(mcfg)

    def _check(self, mcfg: Any) -> None:
        """Fail early, naming both files, when the encoders do not fit the DiT."""
        text_width = int(self.text.encoder.config.d_model)
        if text_width != mcfg.text_dim:
            raise ValueError(f"text encoder {self.cfg.text_encoder} gives {text_width}-d features, "
                             f"DiT {self.cfg.dit} expects text_dim={mcfg.text_dim}")
        if self.audio is not None and self.audio.output_dim != mcfg.audio.audio_dim:
            raise ValueError(f"audio encoder {self.cfg.audio_encoder} gives {self.audio.output_dim}-d features, "
                             f"DiT {self.cfg.dit} expects audio.audio_dim={mcfg.audio.audio_dim}")
        if mcfg.image_dim is not None:
            raise ValueError(f"DiT {self.cfg.dit} expects CLIP image tokens (image_dim={mcfg.image_dim}); "
                             "the CLIP image encoder is not wired into sampling yet")
        s = self.vae.spatial_stride * mcfg.patch_size[1]
        if self.cfg.width % s or self.cfg.height % s:
            raise ValueError(f"sample.width/height must be multiples of {s} (VAE stride x patch), got {self.cfg.width}x{self.cfg.height}")

    def _reference_mode(self, mcfg: Any) -> str:
        z, stride = self.vae.latent_channels, self.vae.temporal_stride
        if mcfg.out_channels != z:
            raise ValueError(f"DiT {self.cfg.dit} predicts {mcfg.out_channels} channels, VAE {self.cfg.vae} has z_dim={z}")
        native = "i2v" if mcfg.in_channels == 2 * z + stride else "ti2v" if mcfg.in_channels == z else None
        if native is None:
            raise ValueError(f"DiT in_channels={mcfg.in_channels} fits neither z={z} (T2V/TI2V) nor 2z+{stride} (I2V)")
        mode = native if self.cfg.reference == "auto" else self.cfg.reference
        if (mode == "i2v") != (native == "i2v"):
            raise ValueError(f"sample.reference={mode} does not fit DiT in_channels={mcfg.in_channels} (z={z})")
        return mode

    @torch.no_grad()
    def __call__(
        self, caption: dict[str, Any], image: np.ndarray | None, audio: np.ndarray, *,
        seed: int, num_frames: int = 0, progress: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (T, H, W, 3) frames, float32 16 kHz audio of the same length)."""
        from model.audio_windows import AudioWindowConfig, batch_audio_windows
        from model.phase_layout import layout_from_annotation
        from model.reference import i2v_condition, i2v_input, ti2v_inject, ti2v_timesteps

        from evaluation.prompt import annotation_for

        cfg, mcfg, dev = self.cfg, self.dit.config, torch.device(self.cfg.device)
        stride, space = self.vae.temporal_stride, self.vae.spatial_stride
        n = frame_count(cfg, audio.size, num_frames, stride)
        audio = fit_audio(audio, n, cfg.fps)
        n_lat = (n - 1) // stride + 1
        shape = (1, self.vae.latent_channels, n_lat, cfg.height // space, cfg.width // space)

        # 1. Conditions: PACA text (and the negative prompt, base only), audio windows, reference.
        layout = layout_from_annotation(annotation_for(caption, fps=cfg.fps, num_frames=n), stride=stride)
        negative = layout_from_annotation(annotation_for({"base": cfg.negative_prompt}, fps=cfg.fps, num_frames=n), stride=stride)
        texts = {"cond": self.text.encode_layouts([layout]), "neg": self.text.encode_layouts([negative])}
        audio_kw: dict[str, torch.Tensor] = {}
        if self.audio is not None:
            feats = self.audio(torch.from_numpy(audio)[None].to(dev))  # (1, Ta, C)
            windows = AudioWindowConfig(context_s=cfg.audio_context_s, feature_hz=self.audio.feature_hz, stride=stride)
            index, mask = batch_audio_windows(n_lat, [cfg.fps], [feats.shape[1]], windows)
            audio_kw = {"audio": feats, "audio_index": index.to(dev), "audio_mask": mask.to(dev)}
        ref = None
        if self.mode != "none":
            if image is None:
                raise ValueError("a reference image is required (sample.reference != none)")
            img = image_tensor(image, cfg.width, cfg.height).to(dev)
            ref = (i2v_condition(self.vae.encode_reference(img, n), n, stride=stride) if self.mode == "i2v"
                   else self.vae.encode(img[:, :, None]))  # (1, stride + z, F, h, w) or (1, z, 1, h, w)

        # 2. One network call per guidance branch.
        dtype = next(self.dit.parameters()).dtype

        def predict(branch: str, x: torch.Tensor, sigma: float) -> torch.Tensor:
            t = torch.full((1,), sigma * cfg.sampler.timestep_scale, device=dev)
            if self.mode == "ti2v":
                x = ti2v_inject(x, ref)
                t = ti2v_timesteps(t, tuple(x.shape[2:]), mcfg.patch_size)
            elif self.mode == "i2v":
                x = i2v_input(x, ref)
            text = texts["neg" if branch == "uncond" else "cond"]
            kw = dict(audio_kw)
            if branch != "full" and kw:
                if cfg.audio_uncond == "drop":
                    kw = {}
                else:
                    kw["audio"] = torch.zeros_like(kw["audio"])
            return self.dit(x.to(dtype), t, text.tokens.to(dtype), block_ids=text.block_ids,
                            frame_phases=text.frame_phases, **{k: (v.to(dtype) if k == "audio" else v) for k, v in kw.items()})

        # 3. Integrate from noise (drawn on the CPU so a seed gives the same video on every device).
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dev)
        bar = None
        if progress:
            from tqdm import tqdm

            def bar(steps):
                return tqdm(steps, desc="sample", unit="step", leave=False)
        sigmas = sigma_schedule(cfg.sampler.steps, cfg.sampler.shift)
        latents = integrate(guided_velocity(predict, cfg.sampler), noise, sigmas, cfg.sampler.solver, progress=bar)
        if self.mode == "ti2v":
            latents = ti2v_inject(latents, ref.float())

        # 4. Decode to uint8 frames.
        video = self.vae.decode(latents)[0, :, :n]  # (3, T, H, W) in [-1, 1]
        frames = ((video.permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return frames.cpu().numpy(), audio
