"""Diffusers `WanTransformer3DModel` -> `VideoDiT`: config translation and state-dict key conversion.

Pure: takes a config mapping / state dict / loaded module (file and hub loading live in
`train/pretrained.py`). Parameters ActAvatar adds (audio branch, learned alignment weights) are
absent from Wan checkpoints and keep their initial values: audio outputs at zero. An import is
exactly Wan by default: neutral alignment (every text and audio weight 1, `alignment.NEUTRAL`) and
padding tokens visible (Wan's pipeline attends to its zero-padded text), so it reproduces
diffusers' output with no override. ActAvatar's progressive schedule is an explicit override
(`model.alignment.*`, best with `warmup_steps` so the backbone starts from what it was trained with).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from model.alignment import NEUTRAL
from model.dit import DiTConfig, VideoDiT
from model.phase_attention import PhaseAttentionConfig

# Diffusers prefix -> ours, outside the blocks (first match wins; longer prefixes first).
_ROOT = (
    ("patch_embedding.", "patch_embed."),
    ("condition_embedder.time_embedder.", "time_embed."),
    ("condition_embedder.time_proj.", "time_proj."),
    ("condition_embedder.text_embedder.", "text_embed."),
    ("condition_embedder.image_embedder.ff.net.0.proj.", "image_embed.proj_in."),
    ("condition_embedder.image_embedder.ff.net.2.", "image_embed.proj_out."),
    ("condition_embedder.image_embedder.", "image_embed."),
    ("scale_shift_table", "head_modulation.table"),
    ("proj_out.", "proj_out."),
    ("norm_out.", "norm_out."),
)
# Inside blocks.{i}.
_BLOCK = (
    ("attn1.to_out.0.", "self_attn.to_out."),
    ("attn2.to_out.0.", "cross_attn.to_out."),
    ("attn1.", "self_attn."),
    ("attn2.", "cross_attn."),
    ("ffn.net.0.proj.", "ffn.proj_in."),
    ("ffn.net.2.", "ffn.proj_out."),
    ("scale_shift_table", "modulation.table"),
    ("norm2.", "norm2."),
)
# Fused projections (after diffusers' `fuse_projections()`) -> split parts.
_FUSED = {"to_qkv": ("to_q", "to_k", "to_v"), "to_kv": ("to_k", "to_v"), "to_added_kv": ("add_k_proj", "add_v_proj")}
_IGNORED = re.compile(r"(^|\.)norm_added_q\.")  # diffusers ignores it on load too
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


# VAE (t, h, w) stride by latent channels: Wan2.1's VAE has 16 channels and 8x spatial compression,
# Wan2.2's (TI2V-5B) 48 channels and 16x. The transformer config does not name its VAE.
VAE_STRIDE_BY_Z = {16: (4, 8, 8), 48: (4, 16, 16)}


def config_from_diffusers(config: Mapping[str, Any], **overrides: Any) -> DiTConfig:
    """`DiTConfig` from a diffusers `WanTransformer3DModel` config (dict or FrozenDict): exactly Wan
    (neutral alignment, padding visible) unless `overrides` say otherwise."""
    heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
    dim = heads * head_dim
    qk_norm = config.get("qk_norm", "rms_norm_across_heads")
    if qk_norm not in (None, "rms_norm_across_heads"):
        raise ValueError(f"qk_norm must be 'rms_norm_across_heads' or None, got {qk_norm!r}")
    added, image_dim = config.get("added_kv_proj_dim"), config.get("image_dim")
    if (added is None) != (image_dim is None) or added not in (None, dim):
        raise ValueError(
            f"added_kv_proj_dim must equal the model width ({dim}) together with image_dim, "
            f"got added_kv_proj_dim={added}, image_dim={image_dim}"
        )
    fields: dict[str, Any] = dict(
        dim=dim,
        num_layers=int(config["num_layers"]),
        num_heads=heads,
        ffn_dim=int(config["ffn_dim"]),
        in_channels=int(config["in_channels"]),
        out_channels=int(config.get("out_channels") or config["in_channels"]),
        text_dim=int(config["text_dim"]),
        freq_dim=int(config["freq_dim"]),
        patch_size=tuple(int(p) for p in config["patch_size"]),
        eps=float(config["eps"]),
        qk_norm=qk_norm is not None,
        cross_attn_norm=bool(config["cross_attn_norm"]),
        image_dim=image_dim,
        image_pos_embed_len=config.get("pos_embed_seq_len"),
        alignment=NEUTRAL,
        phase=PhaseAttentionConfig(pad_visible=True),
    )
    z = int(config.get("out_channels") or config["in_channels"])
    if z in VAE_STRIDE_BY_Z:
        fields["vae_stride"] = VAE_STRIDE_BY_Z[z]
    fields.update(overrides)
    return DiTConfig(**fields)


def diffusers_config(config: DiTConfig) -> dict[str, Any]:
    """The diffusers `WanTransformer3DModel` constructor kwargs of the same backbone."""
    return {
        "patch_size": list(config.patch_size),
        "num_attention_heads": config.num_heads,
        "attention_head_dim": config.head_dim,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "text_dim": config.text_dim,
        "freq_dim": config.freq_dim,
        "ffn_dim": config.ffn_dim,
        "num_layers": config.num_layers,
        "cross_attn_norm": config.cross_attn_norm,
        "qk_norm": "rms_norm_across_heads" if config.qk_norm else None,
        "eps": config.eps,
        "image_dim": config.image_dim,
        "added_kv_proj_dim": config.dim if config.image_dim is not None else None,
        "pos_embed_seq_len": config.image_pos_embed_len,
    }


def _rename(key: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for old, new in table:
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def convert_diffusers_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename diffusers Wan keys to `VideoDiT` keys (splitting fused projections). Unknown keys raise."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if _IGNORED.search(key):
            continue
        match = _BLOCK_KEY.match(key)
        fused = re.match(r"^(attn[12])\.(to_qkv|to_kv|to_added_kv)\.(weight|bias)$", match.group(2)) if match else None
        if fused:
            attn = {"attn1": "self_attn", "attn2": "cross_attn"}[fused.group(1)]
            parts = _FUSED[fused.group(2)]
            for name, chunk in zip(parts, value.chunk(len(parts), dim=0), strict=True):
                out[f"blocks.{match.group(1)}.{attn}.{name}.{fused.group(3)}"] = chunk
            continue
        if match:
            rest = _rename(match.group(2), _BLOCK)
            new = f"blocks.{match.group(1)}.{rest}" if rest else None
        else:
            new = _rename(key, _ROOT)
        if new is None:
            unknown.append(key)
            continue
        out[new] = value
    if unknown:
        raise ValueError(f"not a diffusers WanTransformer3DModel state dict; unknown keys: {unknown[:8]}")
    return out


def load_wan_state_dict(model: VideoDiT, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a diffusers Wan state dict into `model`; only ActAvatar's new parameters may be missing."""
    converted = convert_diffusers_state_dict(state_dict)
    result = model.load_state_dict(converted, strict=False)
    new = model.new_parameter_prefixes()
    missing = [k for k in result.missing_keys if not k.startswith(new)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"Wan weights do not match the model config: missing {missing[:8]}, unexpected {result.unexpected_keys[:8]}"
        )


def import_diffusers_wan(source: nn.Module | Mapping[str, torch.Tensor], config: DiTConfig | None = None, **overrides: Any) -> VideoDiT:
    """A `VideoDiT` holding a diffusers Wan model's weights.

    Args:
        source: a loaded `WanTransformer3DModel` (its config is read) or its state dict (then `config`
            is required).
        config: the target architecture; defaults to the translated diffusers config.
        overrides: `DiTConfig` fields replacing the translated ones (e.g. audio=..., alignment=...).
    """
    if isinstance(source, nn.Module):
        config = config if config is not None else config_from_diffusers(source.config)
        state_dict = source.state_dict()
    else:
        if config is None:
            raise ValueError("importing a bare state dict needs a DiTConfig (config=...)")
        state_dict = source
    if overrides:
        config = dataclasses.replace(config, **overrides)
    model = VideoDiT(config)
    load_wan_state_dict(model, state_dict)
    return model
