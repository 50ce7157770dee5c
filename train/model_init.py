"""Which DiT the trainer starts from, and its architecture: a registry flavour (random init), our
safetensors folder (e.g. a stage-1 export) or a diffusers Wan transformer, with `model.*` overrides.

    model: {flavor: debug, dim: 128, num_layers: 4, audio: null, alignment: {schedule: constant, text_start: 1.0}}

Every override is optional (null = keep the flavour's / checkpoint's value) and is applied with
`dataclasses.replace`, so `DiTConfig` validates the result. With `init_from`, overrides that change
weight shapes are errors; the others (attention backend, PACA options, a fixed alignment schedule,
eps, rope_theta, text_len) rebuild the loaded model with the new config.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dataset.errors import UserError
from dataset.pose import NUM_KEYPOINTS
from model.audio_attention import AudioAttentionConfig
from model.dit import DiTConfig, VideoDiT
from model.face_identity import FaceIdentityConfig
from model.motion import MotionConfig
from model.pose import PoseConfig
from model.refocus import RefocusConfig
from model.registry import FLAVORS, build_model, get_config

DEFAULT_FLAVOR = "debug"
# Top-level DiTConfig fields that change the state dict's keys or shapes (qk_norm / cross_attn_norm
# add or drop norm weights) or how the weights are read: num_heads splits the same projections into
# other heads (and RoPE bands), vae_stride changes the meaning of every latent.
SHAPE_KEYS = (
    "dim", "num_layers", "num_heads", "ffn_dim", "in_channels", "out_channels", "text_dim", "freq_dim",
    "patch_size", "qk_norm", "cross_attn_norm", "image_dim", "image_pos_embed_len", "vae_stride",
)
FREE_KEYS = ("eps", "rope_theta", "text_len", "attention_backend")
_TUPLE_KEYS = ("patch_size", "vae_stride")
_NONE_IF_ZERO = ("image_dim", "image_pos_embed_len")  # DiTConfig's "no image tokens" is None


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseOverrides:
    """`model.phase.*` (see `PhaseAttentionConfig`); null = keep."""

    pad_visible: bool | None = None
    compact_keys: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioOverrides:
    """`model.audio.*` (see `AudioAttentionConfig`); null = keep. `model.audio: null` removes the branch."""

    audio_dim: int | None = None
    layers: tuple[int, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AlignmentOverrides:
    """`model.alignment.*` (see `AlignmentConfig`); null = keep."""

    schedule: str | None = None
    learned_init: str | None = None
    text_start: float | None = None
    text_end: float | None = None
    audio_start: float | None = None
    audio_end: float | None = None
    warmup_steps: int | None = None


def _set_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if getattr(obj, f.name) is not None}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelConfig:
    """The DiT to train. Every architecture field below `init_from` is an override of the
    `DiTConfig` field of the same name; null keeps the flavour's or checkpoint's value.

    Args:
        flavor: registry flavour ("debug", "wan2.1-t2v-1.3b", ...); "" = "debug". Not together
            with `init_from` (a checkpoint brings its own architecture).
        init_from: a `save_dit` folder (config.json with "_class": "VideoDiT", e.g. OUT/ema of stage 1)
            or a diffusers Wan transformer / pipeline folder or HF id ("" = random init of `flavor`).
        local_files_only: an HF id in `init_from` must already be in the Hugging Face cache (false:
            download it). Only config.json is read to know the architecture; the weights are read
            once (by rank 0 under FSDP).
        dim, num_layers, num_heads, ffn_dim, in_channels, out_channels, text_dim, freq_dim,
            patch_size, qk_norm, cross_attn_norm, vae_stride: backbone shape (not with `init_from`).
        image_dim, image_pos_embed_len: CLIP image tokens; 0 = none (not with `init_from`).
        eps, rope_theta, text_len, attention_backend: applied with `init_from` too.
        phase: PACA options (applied with `init_from` too).
        audio: audio branch overrides; null = no audio branch. With `init_from` only a diffusers
            Wan import may change it (its audio modules are new); a VideoDiT folder may not.
        alignment: per-layer text/audio weights; the same rule as `audio`, except that a fixed
            (non-learned) schedule of a VideoDiT folder may change (it is not stored in the weights).
        motion: motion-intensity modulation (FantasyTalking; `model.motion`): true adds the branch
            (zero-initialised, so also onto a checkpoint without it, e.g. stage 1's export), false
            removes it (not from a checkpoint that has it), null keeps.
        pose: per-frame keypoint condition with pose-free inference (ApoAvatar / TALK-Act;
            `model.pose`): the same rule as `motion`.
        pose_keypoints: how many keypoints of the `dataset.pose` layout the pose branch reads (its
            first ones): 15 (face and body, layout v1; the default) or 57 (with both hands); null
            keeps (a checkpoint's branch keeps its own count: another would change its weights).
        av_interaction: frame-wise audio–video interaction (ApoAvatar; `model.av_interaction`): the
            same rule as `motion`.
        refocus: audio–pose prior refocusing (ApoAvatar; `model.refocus`, needs `model.pose`): the
            per-frame audio intensity scales the pose tokens and gives pose-free samples a prior;
            the same rule as `motion`.
        face_identity: face-focused cross-attention for identity (FantasyTalking;
            `model.face_identity`): every block's video tokens attend to the reference latent's face
            region; the same rule as `motion`.
    """

    flavor: str = ""
    init_from: str = ""
    local_files_only: bool = True
    dim: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    ffn_dim: int | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    text_dim: int | None = None
    freq_dim: int | None = None
    patch_size: tuple[int, ...] | None = None
    qk_norm: bool | None = None
    cross_attn_norm: bool | None = None
    image_dim: int | None = None
    image_pos_embed_len: int | None = None
    vae_stride: tuple[int, ...] | None = None
    eps: float | None = None
    rope_theta: float | None = None
    text_len: int | None = None
    attention_backend: str | None = None
    phase: PhaseOverrides = field(default_factory=PhaseOverrides)
    audio: AudioOverrides | None = field(default_factory=AudioOverrides)
    alignment: AlignmentOverrides = field(default_factory=AlignmentOverrides)
    motion: bool | None = None
    pose: bool | None = None
    pose_keypoints: int | None = None
    av_interaction: bool | None = None
    refocus: bool | None = None
    face_identity: bool | None = None

    def __post_init__(self) -> None:
        if self.flavor and self.init_from:
            raise UserError(
                f"model.flavor={self.flavor!r} and model.init_from={self.init_from!r} are exclusive: "
                "init_from brings its own architecture; drop model.flavor"
            )
        if self.flavor and self.flavor not in FLAVORS:
            raise UserError(f"model.flavor must be one of {sorted(FLAVORS)}, got {self.flavor!r}")
        if self.init_from:
            for key in SHAPE_KEYS:
                if getattr(self, key) is not None:
                    raise UserError(
                        f"model.{key}={getattr(self, key)!r} changes weight shapes or meaning; it cannot override "
                        f"model.init_from={self.init_from!r}"
                    )
        else:
            apply_overrides(get_config(self.flavor or DEFAULT_FLAVOR), self)  # validate now, not at train start

    @property
    def origin(self) -> str:
        """What the architecture comes from, for messages."""
        return self.init_from or self.flavor or DEFAULT_FLAVOR


def architecture_changes(base: DiTConfig, config: ModelConfig) -> dict[str, Any]:
    """The `dataclasses.replace` kwargs that turn `base` into the overridden architecture."""
    changes = {k: getattr(config, k) for k in (*SHAPE_KEYS, *FREE_KEYS) if getattr(config, k) is not None}
    for key in _TUPLE_KEYS:
        if key in changes:
            changes[key] = tuple(changes[key])
    for key in _NONE_IF_ZERO:
        if changes.get(key) == 0:
            changes[key] = None
    if phase := _set_fields(config.phase):
        changes["phase"] = dataclasses.replace(base.phase, **phase)
    if config.audio is None:
        changes["audio"] = None
    elif audio := _set_fields(config.audio):
        if "layers" in audio:
            audio["layers"] = tuple(audio["layers"])
        changes["audio"] = dataclasses.replace(base.audio, **audio) if base.audio is not None else AudioAttentionConfig(**audio)
    if alignment := _set_fields(config.alignment):
        changes["alignment"] = dataclasses.replace(base.alignment, **alignment)
    if config.motion is not None:
        changes["motion"] = (base.motion or MotionConfig()) if config.motion else None
    if config.pose is not None:
        changes["pose"] = (base.pose or PoseConfig()) if config.pose else None
    if config.pose_keypoints is not None:
        pose = changes.get("pose", base.pose)
        if pose is None:
            raise UserError("model.pose_keypoints needs the pose branch (model.pose: true)")
        if not 1 <= config.pose_keypoints <= NUM_KEYPOINTS:
            raise UserError(f"model.pose_keypoints must be in [1, {NUM_KEYPOINTS}] (the dataset.pose layout), "
                            f"got {config.pose_keypoints}")
        if base.pose is not None and base.pose.num_keypoints != config.pose_keypoints:
            raise UserError(f"model.pose_keypoints={config.pose_keypoints} changes the weight shapes of the trained pose "
                            f"branch (it reads {base.pose.num_keypoints} keypoints)")
        changes["pose"] = dataclasses.replace(pose, num_keypoints=config.pose_keypoints)
    if config.av_interaction is not None:
        changes["av_interaction"] = config.av_interaction
    if config.refocus is not None:
        changes["refocus"] = (base.refocus or RefocusConfig()) if config.refocus else None
    if config.face_identity is not None:
        changes["face_identity"] = (base.face_identity or FaceIdentityConfig()) if config.face_identity else None
    return changes


def apply_overrides(base: DiTConfig, config: ModelConfig) -> DiTConfig:
    """`base` with the `model.*` overrides (validated again by DiTConfig)."""
    try:
        return dataclasses.replace(base, **architecture_changes(base, config))
    except ValueError as err:  # nested configs name their key without the "model." root
        message = str(err)
        raise UserError(message if message.startswith("model.") else f"model.{message}") from None


def _check_checkpoint_overrides(base: DiTConfig, config: ModelConfig) -> None:
    """A VideoDiT folder's audio and alignment weights are in the checkpoint: only a fixed
    alignment schedule (a non-persistent buffer) may change."""
    where = f"model.init_from={config.init_from!r}"
    if config.audio is None:
        raise UserError(f"model.audio=null removes weights of {where}; it cannot override a VideoDiT folder")
    if audio := _set_fields(config.audio):
        key, value = next(iter(audio.items()))
        raise UserError(f"model.audio.{key}={value!r} changes weight shapes; it cannot override {where}")
    if config.motion is False and base.motion is not None:
        raise UserError(f"model.motion=false removes the trained motion-intensity weights of {where}")
    if config.pose is False and base.pose is not None:
        raise UserError(f"model.pose=false removes the trained pose-branch weights of {where}")
    if config.refocus is False and base.refocus is not None:
        raise UserError(f"model.refocus=false removes the trained audio–pose refocusing weights of {where}")
    if config.face_identity is False and base.face_identity is not None:
        raise UserError(f"model.face_identity=false removes the trained face-focused identity weights of {where}")
    if config.av_interaction is False and base.av_interaction:
        raise UserError(f"model.av_interaction=false removes the trained audio–video interaction weights of {where}")
    alignment = _set_fields(config.alignment)
    if alignment.get("schedule") == "learned" and base.alignment.schedule != "learned":
        raise UserError(f"model.alignment.schedule='learned' adds weights; it cannot override {where}")
    if alignment and base.alignment.schedule == "learned":
        key = next(iter(alignment))
        raise UserError(f"model.alignment.{key} cannot override the learned alignment weights of {where}")


def _is_our_folder(path: Path) -> bool:
    cfg = path / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get("_class") == "VideoDiT"


def is_diffusers_import(config: ModelConfig) -> bool:
    """`init_from` names a diffusers Wan model (not one of our VideoDiT folders)."""
    return bool(config.init_from) and not _is_our_folder(Path(config.init_from))


def dit_config(config: ModelConfig) -> DiTConfig:
    """The architecture without loading weights (for validation before anything heavy starts)."""
    from train.pretrained import dit_config_from_dict, read_diffusers_wan_config

    if not config.init_from:
        return apply_overrides(get_config(config.flavor or DEFAULT_FLAVOR), config)
    path = Path(config.init_from)
    if _is_our_folder(path):
        base = dit_config_from_dict(json.loads((path / "config.json").read_text()))
        _check_checkpoint_overrides(base, config)
        return apply_overrides(base, config)
    if path.exists() and not (path / "config.json").is_file() and not (path / "transformer").is_dir():
        raise FileNotFoundError(f"model.init_from: {path} holds neither a VideoDiT folder nor a diffusers Wan model")
    from model.wan_import import config_from_diffusers

    wan_config = read_diffusers_wan_config(config.init_from, local_files_only=config.local_files_only)
    return apply_overrides(config_from_diffusers(wan_config), config)


def build_dit(config: ModelConfig, seed: int) -> VideoDiT:
    """A full fp32 `VideoDiT` on CPU with the overridden architecture, identical on every rank
    (same seed / same file)."""
    from train.pretrained import import_wan, load_dit

    arch = dit_config(config)
    if not config.init_from:
        torch.manual_seed(seed)
        return build_model(arch)
    path = Path(config.init_from)
    if _is_our_folder(path):
        return load_dit(path, config=arch)
    # a diffusers import builds its own config; hand it every field so the overrides reach it
    return import_wan(config.init_from, local_files_only=config.local_files_only,
                      **{f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)})
