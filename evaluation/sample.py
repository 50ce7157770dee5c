"""Generate talking-avatar videos from a DiT checkpoint: reference image + audio + phased prompt -> frames.

A checkpoint for sampling is a DiT folder written by `train.pretrained.save_dit` (config.json +
model.safetensors) plus the three encoders (Wan VAE, UMT5, wav2vec2), each a local folder or a
Hugging Face id. `resolve_checkpoint` finds them in the layout `actavatar models tiny --out M`
writes (M/dit, M/vae, M/umt5, M/wav2vec2); anything else is named in `SampleConfig`.

A trainer export also holds conditioning.json (`train.contract`): the encoders, token budgets,
audio context, negative prompt, phase routing and reference mode it was trained with. They are the
defaults here (`evaluation.sample_contract`); an explicit setting that differs logs a warning.

Reference image conditioning follows the DiT's input width: in_channels = 2z + stride is Wan2.1 I2V
(channel-concatenated [mask | image latents]); in_channels = z is Wan2.2 TI2V style (latent frame 0
replaced by the image latent, its tokens at timestep 0). The guidance branches' unconditional inputs
come from `model.guidance.unconditional_inputs` (the trainer's condition dropout uses it too) and the
reference image from `model.resize.cover_crop` (as training windows). The model math lives in
`model/`, the ODE math in `evaluation/sampler.py`; this module wires them together.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dataset.errors import UserError
from evaluation.long_video import Window, check_window, cross_fade, plan_windows, window_caption
from evaluation.sample_contract import settings_from_contract, source_resolves, warn_untrained_guidance
from evaluation.sampler import SamplerConfig, guided_velocity, integrate, sigma_schedule
from dataset.schema import AUDIO_SAMPLE_RATE

log = logging.getLogger(__name__)

REFERENCE_MODES = ("auto", "i2v", "ti2v", "none")
AUDIO_UNCOND = ("zeros", "drop")
PHASE_ROUTINGS = ("per_frame", "global")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# sub-folder names searched for each encoder next to a checkpoint (first match wins)
ENCODER_DIRS = {"vae": ("vae",), "text_encoder": ("umt5", "text_encoder"), "audio_encoder": ("wav2vec2", "audio_encoder"),
                "image_encoder": ("clip", "image_encoder")}  # the CLIP tower only for DiTs with image tokens (Wan2.1 I2V)


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleConfig:
    """Settings that say "null = from the checkpoint" take the value of the DiT folder's
    conditioning.json (what training used); without that file they take the defaults in brackets.
    An explicit value that differs from conditioning.json is used, with a warning.

    Args:
        dit: DiT folder (save_dit format). Empty: taken from --checkpoint.
        vae, text_encoder, audio_encoder: local folder or HF id of each encoder; empty: --encoders DIR,
            then the source conditioning.json records (if it exists locally or is a cached HF id), then
            next to the checkpoint (vae/, umt5/ or text_encoder/, wav2vec2/ or audio_encoder/).
        image_encoder: CLIP vision tower + processor for DiTs with image tokens (Wan2.1 I2V): a folder,
            a Wan I2V pipeline folder/id, or clip/ / image_encoder/ next to the checkpoint or in --encoders.
        device: torch device; dtype: DiT/encoder weights dtype (float32, bfloat16, float16).
        width, height: output size in pixels (multiples of VAE stride x patch size, e.g. 16).
        num_frames: video frames (1 + 4k); 0 = as long as the audio (rounded down to 1 + 4k frames).
            An explicit value trims or zero-pads the audio to it.
        max_frames: hard limit on the frames of one video (0 = none): a longer request is an error
            naming it, never a silent trim.
        window_frames: frames the DiT generates per call (1 + 4k; Wan: 81). Longer videos are made
            of successive windows (evaluation/long_video.py).
        motion_frames: frames each window after the first repeats from the previous one and is
            conditioned on (1 + 4k, at most half a window); the output cross-fades over them.
        window_audio_context_s: audio encoded on each side of a window's span, so the audio encoder
            sees context across window boundaries.
        fps: output frame rate (the model's training rate, 25).
        seed: noise seed of the first sample; a batch uses seed + index unless a job names its own.
        max_base_tokens, max_phase_tokens: text truncation per block; null = from the checkpoint
            (train `encoders.max_base_tokens` / `max_phase_tokens`) [256 / 32].
        audio_context_s: audio context on each side of a latent frame; null = from the checkpoint
            (train `encoders.audio_context_s`) [0.04].
        negative_prompt: the text of the unconditional branch (base block only, no phases); null =
            from the checkpoint (train `guidance.negative_prompt`) [""].
        phase_routing: "per_frame" (PACA) or "global" (every frame sees every phase); null = from the
            checkpoint (train `data.phase_routing`) ["per_frame"].
        audio_uncond: unconditional audio for audio guidance: "zeros" (zero wav2vec2 features, what
            training's audio dropout feeds) or "drop" (no audio attention at all).
        reference: image conditioning: i2v, ti2v, none, or auto = from the checkpoint (train
            `stage.reference`: first_frame -> ti2v), else from the DiT's in_channels.
        crf: x264 quality of the written mp4.
        threads: torch intra-op CPU threads while sampling (0 = leave torch's setting); tiny models run
            several times faster on 1 thread (thread hand-off costs more than their small matmuls).
        lora: LoRA adapter files merged into the DiT at load, each "PATH[:SCALE]" (scale 1 when
            omitted): diffusers' Wan LoRA format, e.g. a trainer's OUT/final/lora (train/lora.py).
        motion_intensity: FantasyTalking's motion-intensity control for DiTs trained with
            `model.motion`: (face, body) in [0, 1], or one value for both (`dataset.pose` scale:
            0 still, 1 a vigorous nod / fast wave); () = unconditioned.
        sampler: steps, solver, shift and guidance (evaluation/sampler.py).
    """

    dit: str = ""
    vae: str = ""
    text_encoder: str = ""
    audio_encoder: str = ""
    image_encoder: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    width: int = 256
    height: int = 256
    num_frames: int = 0
    max_frames: int = 0
    window_frames: int = 81
    motion_frames: int = 5
    window_audio_context_s: float = 1.0
    fps: float = 25.0
    seed: int = 0
    max_base_tokens: int | None = None
    max_phase_tokens: int | None = None
    audio_context_s: float | None = None
    negative_prompt: str | None = None
    phase_routing: str | None = None
    audio_uncond: str = "zeros"
    reference: str = "auto"
    crf: int = 20
    threads: int = 0
    lora: tuple[str, ...] = ()
    motion_intensity: tuple[float, ...] = ()
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        if len(self.motion_intensity) > 2 or not all(0.0 <= float(v) <= 1.0 for v in self.motion_intensity):
            raise UserError(f"sample.motion_intensity must be () or one or two values (face, body) in [0, 1], got {list(self.motion_intensity)}")
        if self.dtype not in DTYPES:
            raise UserError(f"sample.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for key in ("width", "height"):
            value = getattr(self, key)
            if value < 16 or value % 16:
                raise UserError(f"sample.{key} must be a multiple of 16 and >= 16, got {value}")
        if self.num_frames < 0 or (self.num_frames and (self.num_frames - 1) % 4):
            raise UserError(f"sample.num_frames must be 0 (from the audio) or 1 + 4k, got {self.num_frames}")
        if self.max_frames < 0:
            raise UserError(f"sample.max_frames must be >= 0 (0 = no limit), got {self.max_frames}")
        check_window(self.window_frames, self.motion_frames)
        if self.window_audio_context_s < 0:
            raise UserError(f"sample.window_audio_context_s must be >= 0, got {self.window_audio_context_s}")
        if self.fps <= 0:
            raise UserError(f"sample.fps must be > 0, got {self.fps}")
        if self.audio_uncond not in AUDIO_UNCOND:
            raise UserError(f"sample.audio_uncond must be one of {AUDIO_UNCOND}, got {self.audio_uncond!r}")
        if self.reference not in REFERENCE_MODES:
            raise UserError(f"sample.reference must be one of {REFERENCE_MODES}, got {self.reference!r}")
        for key in ("max_base_tokens", "max_phase_tokens"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise UserError(f"sample.{key} must be >= 1 or null (from the checkpoint), got {getattr(self, key)}")
        if self.audio_context_s is not None and self.audio_context_s < 0:
            raise UserError(f"sample.audio_context_s must be >= 0 or null (from the checkpoint), got {self.audio_context_s}")
        if self.phase_routing is not None and self.phase_routing not in PHASE_ROUTINGS:
            raise UserError(f"sample.phase_routing must be one of {PHASE_ROUTINGS} or null, got {self.phase_routing!r}")
        if self.threads < 0:
            raise UserError(f"sample.threads must be >= 0 (0 = torch default), got {self.threads}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"sample.crf must be in 0..51, got {self.crf}")
        if not (self.device == "cpu" or self.device.startswith("cuda") or self.device == "mps"):
            raise UserError(f"sample.device must be cpu, cuda[:N] or mps, got {self.device!r}")


def resolve_checkpoint(cfg: SampleConfig, checkpoint: str | Path | None = None, encoders: str | Path | None = None) -> SampleConfig:
    """Fill dit / encoder paths from a checkpoint folder: CKPT (save_dit folder) or CKPT/dit; encoders
    from ENCODERS/<name>, the source the DiT's conditioning.json records (when it resolves offline),
    CKPT/<name> or the DiT folder's parent (e.g. a trainer's OUT/final plus `--encoders M` from
    `actavatar models tiny --out M`). Values already set in `cfg` win."""
    from train.contract import read_contract

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
        raise UserError("no DiT given: pass --checkpoint CKPT or dit=PATH")
    if not (dit / "config.json").is_file():
        raise FileNotFoundError(f"{dit}: no config.json (expected a DiT folder written by save_dit)")
    found: dict[str, str] = {"dit": str(dit)}
    contract = read_contract(dit)
    image_tokens = json.loads((dit / "config.json").read_text()).get("image_dim") is not None
    for key, names in ENCODER_DIRS.items():
        if getattr(cfg, key) or (key == "image_encoder" and not image_tokens):
            continue
        in_encoders = encoders is not None and any((Path(encoders) / n).is_dir() for n in names)
        recorded = getattr(contract, key, "") if contract is not None else ""
        if not in_encoders and source_resolves(recorded):  # --encoders DIR wins over the recorded source
            found[key] = recorded
            continue
        bases = [Path(p) for p in (encoders, checkpoint) if p is not None] + [dit, dit.parent]
        where = [base / n for base in dict.fromkeys(bases) for n in names]
        hit = next((p for p in where if p.is_dir()), None)
        if hit is None:
            raise FileNotFoundError(f"no {key} for checkpoint {dit}: looked for {', '.join(map(str, where))}; "
                                    f"pass {key}=PATH (a local folder or a Hugging Face id)")
        found[key] = str(hit)
    return dataclasses.replace(cfg, **found)


def frame_count(cfg: SampleConfig, num_audio_samples: int, requested: int = 0, stride: int = 4) -> int:
    """Video frames to generate: requested / cfg.num_frames, else what the audio covers, rounded down
    to 1 + stride·k. More than cfg.max_frames (when set) is an error."""
    n = requested or cfg.num_frames
    seconds = num_audio_samples / AUDIO_SAMPLE_RATE
    if not n:
        n = int(seconds * cfg.fps + 1e-6)
        n = (n - 1) // stride * stride + 1
        if n < 1 + stride:
            raise UserError(f"audio of {seconds:.2f} s is too short for {1 + stride} frames at {cfg.fps} fps")
    elif (n - 1) % stride:
        raise UserError(f"num_frames must be 1 + {stride}k, got {n}")
    if cfg.max_frames and n > cfg.max_frames:
        what = f"num_frames={n}" if requested or cfg.num_frames else f"audio of {seconds:.2f} s needs {n} frames at {cfg.fps:g} fps"
        raise UserError(f"{what}, more than sample.max_frames={cfg.max_frames}: raise the limit (0 = none) or set "
                        "num_frames to sample the beginning only")
    return n


def fit_audio(audio: np.ndarray, num_frames: int, fps: float) -> np.ndarray:
    """Trim or zero-pad 16 kHz audio to the video's length."""
    n = int(round(num_frames / fps * AUDIO_SAMPLE_RATE))
    out = np.zeros(n, np.float32)
    out[: min(n, audio.size)] = audio[:n]
    return out


def image_tensor(image: np.ndarray, width: int, height: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> (1, 3, height, width) in [-1, 1]: scale to cover, then centre crop, with the
    function that prepares training windows (`model.resize.cover_crop`), so the reference matches
    the first frame the model saw in training."""
    from model.resize import cover_crop

    return cover_crop(torch.tensor(np.asarray(image)[..., :3]), height, width)  # a copy: PIL arrays are read-only


class AvatarSampler:
    """Loads the DiT and encoders once; `__call__` turns one prompt into frames.

    Args:
        cfg: a SampleConfig whose paths are resolved (see `resolve_checkpoint`); its "from the
            checkpoint" settings are filled from the DiT's conditioning.json (`self.cfg` holds the result).
    """

    def __init__(self, cfg: SampleConfig) -> None:
        from train.contract import read_contract
        from train.pretrained import load_audio_encoder, load_dit, load_text_encoder, load_vae

        self.contract = read_contract(cfg.dit)
        where = f"checkpoint {cfg.dit}"
        cfg = settings_from_contract(cfg, self.contract, where)
        warn_untrained_guidance(cfg, self.contract, where)
        self.cfg = cfg
        dtype = DTYPES[cfg.dtype]
        self.dit = load_dit(cfg.dit, device=cfg.device, dtype=dtype).eval()
        for spec in cfg.lora:
            from train.lora import merge_adapters, parse_lora_arg, read_diffusers_lora

            path, scale = parse_lora_arg(spec)
            merge_adapters(self.dit, read_diffusers_lora(path), scale, where=f"LoRA {path}")
            log.info("merged LoRA %s (scale %g) into %s", path, scale, cfg.dit)
        mcfg = self.dit.config
        self.vae = load_vae(cfg.vae, device=cfg.device)  # the VAE stays fp32: decode quality
        self.text = load_text_encoder(cfg.text_encoder, device=cfg.device, dtype=dtype, max_length=mcfg.text_len,
                                      max_base_tokens=cfg.max_base_tokens, max_phase_tokens=cfg.max_phase_tokens)
        self.audio = load_audio_encoder(cfg.audio_encoder, device=cfg.device, dtype=dtype) if mcfg.audio is not None else None
        self.image = None
        if mcfg.image_dim is not None:
            from train.pretrained import load_image_encoder

            if not cfg.image_encoder:
                raise UserError(f"DiT {cfg.dit} takes CLIP image tokens (image_dim={mcfg.image_dim}): give image_encoder=PATH "
                                "(a CLIP vision folder or a Wan2.1-I2V pipeline) or put clip/ next to the checkpoint")
            self.image = load_image_encoder(cfg.image_encoder, device=cfg.device, dtype=dtype)
        self._check(mcfg)
        self.motion_intensity = self._motion_intensity(mcfg)
        if self.contract is not None and self.audio is not None and self.audio.feature_hz != self.contract.audio_feature_hz:
            log.warning("audio encoder %s gives %g Hz features; %s was trained with %g Hz", cfg.audio_encoder,
                        self.audio.feature_hz, where, self.contract.audio_feature_hz)
        self.mode = self._reference_mode(mcfg)

    def _check(self, mcfg: Any) -> None:
        """Fail early, naming both files, when the encoders do not fit the DiT."""
        text_width = int(self.text.encoder.config.d_model)
        if text_width != mcfg.text_dim:
            raise UserError(f"text encoder {self.cfg.text_encoder} gives {text_width}-d features, "
                             f"DiT {self.cfg.dit} expects text_dim={mcfg.text_dim}")
        if self.audio is not None and self.audio.output_dim != mcfg.audio.audio_dim:
            raise UserError(f"audio encoder {self.cfg.audio_encoder} gives {self.audio.output_dim}-d features, "
                             f"DiT {self.cfg.dit} expects audio.audio_dim={mcfg.audio.audio_dim}")
        if self.image is not None and self.image.output_dim != mcfg.image_dim:
            raise UserError(f"image encoder {self.cfg.image_encoder} gives {self.image.output_dim}-d tokens, "
                             f"DiT {self.cfg.dit} expects image_dim={mcfg.image_dim}")
        s = self.vae.spatial_stride * mcfg.patch_size[1]
        if self.cfg.width % s or self.cfg.height % s:
            raise UserError(f"sample.width/height must be multiples of {s} (VAE stride x patch), got {self.cfg.width}x{self.cfg.height}")

    def _pose_tensor(self, pose: np.ndarray | None, num_frames: int) -> torch.Tensor | None:
        """(1, F, K, 3) float32 keypoints covering the video's `num_frames`, or None (pose-free)."""
        if pose is None:
            return None
        from dataset.pose import PoseError, check_pose

        if self.dit.config.pose is None:
            raise UserError(f"--pose needs a DiT trained with model.pose; {self.cfg.dit} has no pose branch")
        try:
            pose = check_pose(pose)
        except PoseError as err:
            raise UserError(f"pose: {err}") from None
        if pose.shape[0] < num_frames:
            raise UserError(f"pose has {pose.shape[0]} frames, the video has {num_frames} ({self.cfg.fps:g} fps, from its "
                            "audio or num_frames): give keypoints for every frame")
        return torch.from_numpy(pose[:num_frames])[None]

    @torch.no_grad()
    def _face(self, img: torch.Tensor | None, image: np.ndarray | None,
              face_box: tuple[float, float, float, float] | None) -> dict[str, torch.Tensor] | None:
        """The face-identity branch's inputs: the reference image's latent (the frame the model
        sees, encoded alone) and its face box mapped into that frame; None for other DiTs or
        without a reference image or face box (the branch then adds nothing)."""
        if self.dit.config.face_identity is None:
            return None
        if image is None or face_box is None:
            log.warning("DiT %s reads the reference's face (model.face_identity) but got %s: its face branch adds nothing",
                        self.cfg.dit, "no reference image" if image is None else "no face box (--face-box)")
            return None
        from model.resize import box_in_cover_crop

        if img is None:  # reference mode "none": the face is still read from the image
            img = image_tensor(image, self.cfg.width, self.cfg.height).to(self.cfg.device)

        box = box_in_cover_crop(face_box, image.shape[0], image.shape[1], self.cfg.height, self.cfg.width)
        latent = self.vae.encode(img[:, :, None])[:, :, 0]  # (1, z, h, w)
        return {"face_reference": latent, "face_box": torch.tensor([box], dtype=torch.float32, device=latent.device)}

    def _motion_intensity(self, mcfg: Any) -> torch.Tensor | None:
        """(1, 2) (face, body) intensities for DiTs with a motion branch, or None (unconditioned)."""
        values = tuple(float(v) for v in self.cfg.motion_intensity)
        if not values:
            return None
        if mcfg.motion is None:
            raise UserError(f"--motion-intensity needs a DiT trained with model.motion; {self.cfg.dit} has no motion branch")
        from model.motion import motion_tensor

        return motion_tensor([values * 2 if len(values) == 1 else values], device=self.cfg.device)

    def _reference_mode(self, mcfg: Any) -> str:
        z, stride = self.vae.latent_channels, self.vae.temporal_stride
        if mcfg.out_channels != z:
            raise UserError(f"DiT {self.cfg.dit} predicts {mcfg.out_channels} channels, VAE {self.cfg.vae} has z_dim={z}")
        native = "i2v" if mcfg.in_channels == 2 * z + stride else "ti2v" if mcfg.in_channels == z else None
        if native is None:
            raise UserError(f"DiT in_channels={mcfg.in_channels} fits neither z={z} (T2V/TI2V) nor 2z+{stride} (I2V)")
        mode = native if self.cfg.reference == "auto" else self.cfg.reference
        if mcfg.image_dim is not None and native != "i2v":
            raise UserError(f"DiT {self.cfg.dit} takes image tokens but its in_channels={mcfg.in_channels} is not 2z+{stride} "
                             "(Wan2.1 I2V's [noisy | mask | condition])")
        if (mode == "i2v") != (native == "i2v"):
            raise UserError(f"sample.reference={mode} does not fit DiT in_channels={mcfg.in_channels} (z={z})")
        return mode

    @torch.no_grad()
    def conditions(self, caption: dict[str, Any], audio: np.ndarray, num_frames: int) -> dict[str, tuple[Any, dict[str, torch.Tensor]]]:
        """{branch: (TextBatch, audio kwargs)} for "full" v(T, A), "text" v(T) and "uncond" v(∅) of a
        one-window video of `num_frames` frames (`audio` already fitted to it)."""
        return self.window_conditions(caption, audio, Window(0, num_frames, 0))

    @torch.no_grad()
    def window_features(self, audio: np.ndarray, window: Window) -> torch.Tensor:
        """(1, Ta, C) audio features of the window's span, feature 0 at its first frame: the encoder runs
        on the span plus `window_audio_context_s` of the whole timeline's audio on each side."""
        cfg, hz = self.cfg, self.audio.feature_hz
        hop = AUDIO_SAMPLE_RATE / hz  # samples per feature frame
        first = int(round(window.start / cfg.fps * AUDIO_SAMPLE_RATE))
        last = min(audio.size, int(round(window.end / cfg.fps * AUDIO_SAMPLE_RATE)))
        context = int(np.ceil(cfg.window_audio_context_s * hz))  # in feature frames, so offsets stay whole
        lo = max(0, first - int(round(context * hop)))
        hi = min(audio.size, last + int(round(context * hop)))
        feats = self.audio(torch.from_numpy(np.ascontiguousarray(audio[lo:hi]))[None].to(self.cfg.device))
        return feats[:, int(round((first - lo) / hop)):]

    @torch.no_grad()
    def window_conditions(self, caption: dict[str, Any], audio: np.ndarray, window: Window) -> dict[str, tuple[Any, dict[str, torch.Tensor]]]:
        """The guidance branches' inputs for one window of a video: the phases of its time span
        (`long_video.window_caption`) and its audio (`window_features`); `audio` is the whole video's.

        The "text" and "uncond" inputs come from `model.guidance.unconditional_inputs`, as the
        trainer's condition dropout does.
        """
        from model.audio_windows import AudioWindowConfig, batch_audio_windows
        from model.guidance import unconditional_inputs
        from model.phase_layout import layout_from_annotation

        from evaluation.prompt import annotation_for

        cfg, dev, stride = self.cfg, torch.device(self.cfg.device), self.vae.temporal_stride
        n_lat = (window.frames - 1) // stride + 1
        local = window_caption(caption, window.start / cfg.fps, window.end / cfg.fps)
        layout = layout_from_annotation(annotation_for(local, fps=cfg.fps, num_frames=window.frames), stride=stride,
                                        routing=cfg.phase_routing)
        text = self.text.encode_layouts([layout])
        negative = self.text.encode_base(cfg.negative_prompt)
        feats, audio_kw = None, {}
        if self.audio is not None:
            feats = self.window_features(audio, window)  # (1, Ta, C)
            windows = AudioWindowConfig(context_s=cfg.audio_context_s, feature_hz=self.audio.feature_hz, stride=stride)
            index, mask = batch_audio_windows(n_lat, [cfg.fps], [feats.shape[1]], windows)
            audio_kw = {"audio_index": index.to(dev), "audio_mask": mask.to(dev)}
        full_kw = {"audio": feats, **audio_kw} if feats is not None else {}

        def dropped(drop_text: bool) -> tuple[Any, dict[str, torch.Tensor]]:
            branch_text, zeros = unconditional_inputs(text, feats, negative, drop_text=torch.tensor([drop_text]),
                                                      drop_audio=torch.tensor([True]))
            # "drop" removes audio attention altogether: an option training never saw ("zeros" is what it saw)
            return branch_text, ({} if feats is None or cfg.audio_uncond == "drop" else {"audio": zeros, **audio_kw})

        return {"full": (text, full_kw), "text": dropped(False), "uncond": dropped(True)}

    @torch.no_grad()
    def known_latents(self, window: Window, image: torch.Tensor | None, motion: torch.Tensor | None) -> torch.Tensor | None:
        """What a window is conditioned on, in the form its reference mode takes:
        i2v: (1, stride + z, F, h, w) [mask | latents of [known frames, zeros...]];
        ti2v / none: (1, z, K, h, w) clean latents of the known frames.
        The known frames are the reference image (first window; none for mode "none") or the previous
        window's last frames `motion` (1, 3, M, H, W) in [-1, 1]."""
        from model.reference import i2v_condition

        stride = self.vae.temporal_stride
        if motion is None:
            if self.mode == "none":
                return None
            if image is None:
                raise UserError("a reference image is required (sample.reference != none)")
            if self.mode == "i2v":
                return i2v_condition(self.vae.encode_reference(image, window.frames), window.frames, stride=stride)
            return self.vae.encode(image[:, :, None])  # (1, z, 1, h, w)
        if self.mode == "i2v":
            video = motion.new_zeros(1, 3, window.frames, *motion.shape[3:])
            video[:, :, : motion.shape[2]] = motion
            return i2v_condition(self.vae.encode(video), window.frames, stride=stride, known=motion.shape[2])
        return self.vae.encode(motion)  # (1, z, 1 + (M - 1) / stride, h, w)

    @torch.no_grad()
    def __call__(
        self, caption: dict[str, Any], image: np.ndarray | None, audio: np.ndarray, *,
        seed: int, num_frames: int = 0, progress: bool = False, pose: np.ndarray | None = None,
        face_box: tuple[float, float, float, float] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 (T, H, W, 3) frames, float32 16 kHz audio of the same length).

        Videos longer than `window_frames` are generated window by window (evaluation/long_video.py);
        each window after the first is conditioned on the previous one's last `motion_frames` frames.
        `pose`: (>= T, K, 3) keypoints per output frame (`dataset.pose` layout, normalised to the
        output frame) for DiTs trained with `model.pose`; None = pose-free. `face_box`: the reference
        image's face (x0, y0, x1, y1 in [0, 1] of `image`) for DiTs with `model.face_identity`, whose
        every window and guidance branch reads it; ignored by other DiTs.
        """
        cfg, dev = self.cfg, torch.device(self.cfg.device)
        stride = self.vae.temporal_stride
        n = frame_count(cfg, audio.size, num_frames, stride)
        audio = fit_audio(audio, n, cfg.fps)
        poses = self._pose_tensor(pose, n)
        intensity = None
        if self.dit.config.refocus is not None:  # ApoAvatar's refocusing reads the speech's per-frame intensity
            from dataset.audio_intensity import frame_intensity

            intensity = torch.from_numpy(frame_intensity(audio, n))[None]  # (1, T)
        windows = plan_windows(n, cfg.window_frames, cfg.motion_frames, stride)
        img = None
        if self.mode != "none" and image is not None:
            img = image_tensor(image, cfg.width, cfg.height).to(dev)
        # CLIP tokens of the reference (Wan2.1 I2V), from the image as given, as diffusers' pipeline does;
        # every window and every guidance branch sees them (the identity anchor of long videos)
        tokens = self.image([image]) if self.image is not None and image is not None else None
        face = self._face(img, image, face_box)
        noise = torch.Generator().manual_seed(seed)  # drawn on the CPU: a seed gives the same video on every device
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(windows) * cfg.sampler.steps, desc="sample", unit="step", leave=False)
        pieces, tail = [], None  # uint8 frames done; the previous window's last frames (3, M, H, W) in [-1, 1]
        try:
            for i, window in enumerate(windows):
                motion = None if tail is None else tail[None]
                video = self.generate_window(caption, audio, window, img, motion, noise, bar, image_tokens=tokens, face=face,
                                             pose=None if poses is None else poses[:, window.start : window.end],
                                             audio_intensity=None if intensity is None else intensity[:, window.start : window.end])
                if tail is not None:
                    video[:, : window.motion] = cross_fade(tail, video[:, : window.motion])
                keep = window.frames - (windows[i + 1].motion if i + 1 < len(windows) else 0)
                pieces.append(_to_uint8(video[:, :keep]))
                tail = video[:, keep:] if keep < window.frames else None
        finally:
            if bar is not None:
                bar.close()
        return np.concatenate(pieces), audio

    @torch.no_grad()
    def generate_window(
        self, caption: dict[str, Any], audio: np.ndarray, window: Window, image: torch.Tensor | None,
        motion: torch.Tensor | None, noise: torch.Generator, bar: Any = None, image_tokens: torch.Tensor | None = None,
        pose: torch.Tensor | None = None, audio_intensity: torch.Tensor | None = None,
        face: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """One window's frames (3, L, H, W) in [-1, 1], conditioned on the reference image (first
        window) or on `motion`, the previous window's last frames (1, 3, M, H, W); `pose`: the
        window's keypoints (1, L, K, 3) for DiTs with a pose branch; `audio_intensity`: the window's
        (1, L) per-frame intensity for DiTs with `model.refocus` (the audio-conditioned branch only);
        `face`: {"face_reference", "face_box"} for DiTs with `model.face_identity` (every branch)."""
        from model.reference import i2v_input, ti2v_inject, ti2v_timesteps

        cfg, mcfg, dev = self.cfg, self.dit.config, torch.device(self.cfg.device)
        stride, space = self.vae.temporal_stride, self.vae.spatial_stride
        n_lat = (window.frames - 1) // stride + 1
        shape = (1, self.vae.latent_channels, n_lat, cfg.height // space, cfg.width // space)
        if pose is not None:  # the frames the latent frames encode (the decoder's last ones are cut anyway)
            pose = pose[:, : 1 + stride * (n_lat - 1)].to(dev)
        if audio_intensity is not None:
            audio_intensity = audio_intensity[:, : 1 + stride * (n_lat - 1)].to(dev)

        # 1. Conditions per guidance branch (PACA text, audio windows), known latents.
        branches = self.window_conditions(caption, audio, window)
        known = self.known_latents(window, image, motion)
        x_noise = torch.randn(shape, generator=noise).to(dev)
        # a T2V model ("none") continues a window by inpainting: its known frames are fed noised to the
        # current level at every call (training-free, as RePaint); TI2V models see them clean at t = 0
        replace = self.mode == "none" and known is not None
        clean = self.mode == "ti2v" and known is not None

        # 2. One network call per guidance branch.
        def predict(branch: str, x: torch.Tensor, sigma: float) -> torch.Tensor:
            t = torch.full((1,), sigma * cfg.sampler.timestep_scale, device=dev)
            if clean:
                x = ti2v_inject(x, known)
                t = ti2v_timesteps(t, tuple(x.shape[2:]), mcfg.patch_size, known=known.shape[2])
            elif replace:
                k = known.shape[2]
                x = ti2v_inject(x, (1 - sigma) * known + sigma * x_noise[:, :, :k])
            elif self.mode == "i2v":
                x = i2v_input(x, known)
            text, kw = branches[branch]
            if self.motion_intensity is not None:  # every guidance branch: it is not a guided condition
                kw = {**kw, "motion": self.motion_intensity}
            if pose is not None:  # likewise: every branch sees the pose
                kw = {**kw, "pose": pose}
            if audio_intensity is not None and branch == "full":  # dropped with the audio, as in training
                kw = {**kw, "audio_intensity": audio_intensity}
            if face is not None:  # the reference's face, like the reference image, in every branch and window
                kw = {**kw, **face}
            # VideoDiT casts its inputs to its weights' dtype; the timestep stays fp32
            return self.dit(x, t, text.tokens, block_ids=text.block_ids, frame_phases=text.frame_phases, image=image_tokens, **kw)

        # 3. Integrate from noise.
        step = None
        if bar is not None:
            def step(steps):
                for s in steps:
                    yield s
                    bar.update(1)
        sigmas = sigma_schedule(cfg.sampler.steps, cfg.sampler.shift)
        latents = integrate(guided_velocity(predict, cfg.sampler), x_noise, sigmas, cfg.sampler.solver, progress=step)
        if clean or replace:
            latents = ti2v_inject(latents, known.float())

        # 4. Decode.
        return self.vae.decode(latents)[0, :, : window.frames]  # (3, L, H, W) in [-1, 1]


def _to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    frames = ((video.permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return frames.cpu().numpy()
