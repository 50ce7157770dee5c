"""conditioning.json: how a checkpoint's inputs were built in training, so sampling builds the same.

The trainer's exports (OUT/final, OUT/ema) hold it beside config.json. `actavatar sample` / `eval`
read it back (`read_contract`): encoders, token budgets, audio context, negative prompt, phase
routing and reference mode default to the recorded values; a checkpoint without the file (older
exports, `actavatar models tiny`) keeps the sampler's own defaults.

    {"version": 1, "text_encoder": "Wan-AI/...", "text_dim": 4096, "text_len": 512, "max_base_tokens": 256,
     "max_phase_tokens": 32, "phase_routing": "per_frame", "vae": "...", "vae_z_dim": 16, "vae_stride": [4, 8, 8],
     "audio_encoder": "facebook/wav2vec2-base-960h", "audio_dim": 768, "audio_feature_hz": 50.0,
     "audio_context_s": 0.04, "fps": 25.0, "reference": "ti2v", "image_preprocessing": "cover_crop_...",
     "text_drop": 0.1, "audio_drop": 0.1, "both_drop": 0.1, "negative_prompt": "", "audio_uncond": "zeros",
     "buckets": ["81x480x832"]}
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dataset.errors import UserError
from dataset.audio_intensity import INTENSITY_DEFINITION
from dataset.pose import MOTION_DEFINITION, POSE_DEFINITION
from dataset.schema import VIDEO_FPS
from model.guidance import AUDIO_UNCOND
from model.phase_layout import ROUTINGS
from model.resize import PREPROCESSING

if TYPE_CHECKING:
    from model.dit import DiTConfig
    from train.config import TrainConfig

CONDITIONING_FILE = "conditioning.json"
CONTRACT_VERSION = 1
# stage.reference -> the sampler's reference mode (evaluation.sample.REFERENCE_MODES)
REFERENCE_MODES = {"first_frame": "ti2v", "none": "none", "i2v": "i2v"}


# keys an older conditioning.json (or one of a model without the branch) may lack
OPTIONAL_KEYS = {"version", "image_encoder", "motion", "motion_drop", "pose", "pose_drop", "audio_intensity"}


@dataclass(frozen=True, kw_only=True, slots=True)
class ConditioningContract:
    """The input side of a trained checkpoint (see the module docstring for the JSON).

    Args:
        version: format version (a newer file is refused).
        text_encoder, vae, audio_encoder, image_encoder: the encoder sources as configured in training
            (folder or HF id; image_encoder only for Wan2.1-I2V runs).
        text_dim, audio_dim: encoder feature widths; vae_z_dim / vae_stride: latent channels, (t, h, w) strides.
        text_len, max_base_tokens, max_phase_tokens: text budget and per-block truncation.
        phase_routing: "per_frame" (PACA) or "global" (every frame sees every phase).
        audio_feature_hz, audio_context_s: audio feature rate and context per latent frame.
        fps: video frame rate of the training data.
        reference: "ti2v" (clean first latent frame, stage.reference=first_frame), "i2v" (Wan2.1 I2V mask +
            condition latents + CLIP tokens) or "none".
        image_preprocessing: name of the frame resize/crop (`model.resize.PREPROCESSING`).
        text_drop, audio_drop, both_drop, negative_prompt: guidance dropout of training.
        audio_uncond: what dropped audio was ("zeros").
        buckets: training shapes FRAMESxHEIGHTxWIDTH.
        motion: what the motion intensities mean (`dataset.pose.MOTION_DEFINITION`) for models with
            `model.motion`, "" otherwise; motion_drop: the share trained without them.
        pose: the keypoint layout the pose branch reads (`dataset.pose.POSE_DEFINITION`) for models
            with `model.pose`, "" otherwise; pose_drop: the share trained pose-free.
        audio_intensity: what the refocusing branch reads (`dataset.audio_intensity.INTENSITY_DEFINITION`)
            for models with `model.refocus`, "" otherwise (it is dropped with the audio).
    """

    version: int = CONTRACT_VERSION
    text_encoder: str
    text_dim: int
    text_len: int
    max_base_tokens: int
    max_phase_tokens: int
    phase_routing: str
    vae: str
    vae_z_dim: int
    vae_stride: tuple[int, ...]
    audio_encoder: str
    audio_dim: int
    audio_feature_hz: float
    audio_context_s: float
    fps: float
    reference: str
    image_preprocessing: str
    text_drop: float
    audio_drop: float
    both_drop: float
    negative_prompt: str
    audio_uncond: str
    buckets: tuple[str, ...]
    image_encoder: str = ""  # CLIP tower of Wan2.1-I2V runs; absent from older files
    motion: str = ""  # absent from older files (no motion branch)
    motion_drop: float = 0.0
    pose: str = ""  # absent from older files (no pose branch)
    pose_drop: float = 0.0
    audio_intensity: str = ""  # absent from older files (no refocusing branch)

    def __post_init__(self) -> None:
        if self.version > CONTRACT_VERSION:
            raise UserError(f"conditioning.version {self.version} is newer than this toolkit's {CONTRACT_VERSION}; update it")
        if self.phase_routing not in ROUTINGS:
            raise UserError(f"conditioning.phase_routing must be one of {ROUTINGS}, got {self.phase_routing!r}")
        if self.reference not in REFERENCE_MODES.values():
            raise UserError(f"conditioning.reference must be one of {sorted(REFERENCE_MODES.values())}, got {self.reference!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}
        if not self.motion:  # a model without the motion branch writes the file it wrote before
            del out["motion"], out["motion_drop"]
        if not self.pose:
            del out["pose"], out["pose_drop"]
        if not self.audio_intensity:
            del out["audio_intensity"]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConditioningContract:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = sorted(set(data) - fields), sorted(fields - set(data) - OPTIONAL_KEYS)
        if unknown or missing:
            raise UserError(f"conditioning: unknown keys {unknown} / missing keys {missing}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def training_contract(
    cfg: TrainConfig, arch: DiTConfig, *, feature_hz: float, sources: Mapping[str, str] | None = None
) -> ConditioningContract:
    """The contract of a run: `cfg` (encoders, data, stage, guidance) and the trained architecture.

    `sources` fills encoder sources the config leaves empty (latent shards record theirs).
    """
    found = dict(sources or {})
    enc, g = cfg.encoders, cfg.guidance
    return ConditioningContract(
        text_encoder=enc.text or found.get("text", ""),
        text_dim=arch.text_dim,
        text_len=arch.text_len,
        max_base_tokens=enc.max_base_tokens,
        max_phase_tokens=enc.max_phase_tokens,
        phase_routing=cfg.data.phase_routing,
        vae=enc.vae or found.get("vae", ""),
        vae_z_dim=arch.out_channels,
        vae_stride=tuple(arch.vae_stride),
        audio_encoder=enc.audio or found.get("audio", ""),
        audio_dim=arch.audio.audio_dim if arch.audio is not None else 0,
        audio_feature_hz=float(feature_hz),
        audio_context_s=enc.audio_context_s,
        fps=VIDEO_FPS,  # the corpus rate every clip is normalised to
        reference=REFERENCE_MODES[cfg.stage.reference],
        image_preprocessing=PREPROCESSING,
        text_drop=g.text_drop,
        audio_drop=g.audio_drop,
        both_drop=g.both_drop,
        negative_prompt=g.negative_prompt,
        audio_uncond=AUDIO_UNCOND,
        buckets=tuple(cfg.data.buckets),
        image_encoder=enc.image or found.get("image", ""),
        motion=MOTION_DEFINITION if arch.motion is not None else "",
        motion_drop=g.motion_drop if arch.motion is not None else 0.0,
        pose=POSE_DEFINITION if arch.pose is not None else "",
        pose_drop=g.pose_drop if arch.pose is not None else 0.0,
        audio_intensity=INTENSITY_DEFINITION if arch.refocus is not None else "",
    )


def write_contract(directory: str | os.PathLike, contract: ConditioningContract) -> Path:
    """Write DIR/conditioning.json via a temporary file and rename (a reader never sees half a file)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{CONDITIONING_FILE}.tmp"
    tmp.write_text(json.dumps(contract.to_dict(), indent=2) + "\n")
    tmp.replace(out / CONDITIONING_FILE)
    return out / CONDITIONING_FILE


def read_contract(directory: str | os.PathLike) -> ConditioningContract | None:
    """DIR/conditioning.json, or None when the checkpoint has none (older exports, tiny models)."""
    path = Path(directory) / CONDITIONING_FILE
    if not path.is_file():
        return None
    try:
        return ConditioningContract.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: {err}") from None
