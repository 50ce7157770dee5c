"""Model flavours (a dict of functions returning `DiTConfig`) and `build_model`.

Wan numbers from Wan-Video/Wan2.1 `wan/configs/wan_{t2v_1_3B,i2v_14B}.py`, Wan2.2 `wan_ti2v_5B.py`
and diffusers `scripts/convert_wan_to_diffusers.py` (diffusers names in brackets):
  1.3B T2V: dim 1536 [12 heads x 128], 30 layers, ffn 8960, in/out 16
  14B I2V:  dim 5120 [40 x 128], 40 layers, ffn 13824, in 36 (16 noisy + 4 mask + 16 cond), out 16,
            CLIP image tokens [image_dim 1280, added_kv_proj_dim 5120]
  5B TI2V:  dim 3072 [24 x 128], 30 layers, ffn 14336, in/out 48, VAE stride 4x16x16
All: text_dim 4096 (umt5-xxl), freq_dim 256, patch 1x2x2, eps 1e-6, qk_norm, cross_attn_norm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from model.alignment import AlignmentConfig
from model.audio_attention import AudioAttentionConfig
from model.dit import DiTConfig, VideoDiT


def _debug() -> DiTConfig:
    # CPU-sized; pairs with the tiny encoders of `model.tiny` (text 32, audio 32, VAE z 4).
    return DiTConfig(
        dim=64,
        num_layers=2,
        num_heads=4,
        ffn_dim=128,
        in_channels=4,
        out_channels=4,
        text_dim=32,
        freq_dim=32,
        text_len=64,
        audio=AudioAttentionConfig(audio_dim=32),
    )


def _wan21_t2v_1_3b() -> DiTConfig:
    return DiTConfig(dim=1536, num_layers=30, num_heads=12, ffn_dim=8960, in_channels=16, out_channels=16)


def _wan21_i2v_14b() -> DiTConfig:
    return DiTConfig(
        dim=5120, num_layers=40, num_heads=40, ffn_dim=13824, in_channels=36, out_channels=16, image_dim=1280
    )


def _wan22_ti2v_5b() -> DiTConfig:
    return DiTConfig(
        dim=3072, num_layers=30, num_heads=24, ffn_dim=14336, in_channels=48, out_channels=48, vae_stride=(4, 16, 16)
    )


FLAVORS: dict[str, Callable[[], DiTConfig]] = {
    "debug": _debug,
    "wan2.1-t2v-1.3b": _wan21_t2v_1_3b,
    "wan2.1-i2v-14b": _wan21_i2v_14b,
    "wan2.2-ti2v-5b": _wan22_ti2v_5b,
}


def get_config(flavor: str, **overrides) -> DiTConfig:
    """The flavour's config with top-level fields replaced (validated again)."""
    if flavor not in FLAVORS:
        raise ValueError(f"model.flavor must be one of {sorted(FLAVORS)}, got {flavor!r}")
    return dataclasses.replace(FLAVORS[flavor](), **overrides)


def plain_wan_config(config: DiTConfig) -> DiTConfig:
    """The same architecture with ActAvatar's additions neutral: no audio, constant text weight 1."""
    return dataclasses.replace(
        config, audio=None, alignment=AlignmentConfig(schedule="constant", text_start=1.0, audio_start=0.0)
    )


def build_model(config: DiTConfig, *, device: torch.device | str | None = None) -> VideoDiT:
    """A `VideoDiT` with Wan's initialisation (`VideoDiT.init_weights`), on `device` (default CPU).

    The modules are created on the meta device and materialised once, so PyTorch's default
    initialisation never runs (Wan's init overwrites every value; at 14B it would cost minutes).
    device="meta" allocates nothing and initialises nothing: `to_empty(device=...)`, then call
    `init_weights()` (it also fills the non-persistent buffers a state dict does not carry).
    """
    with torch.device("meta"):
        model = VideoDiT(config)
    if device is not None and torch.device(device).type == "meta":
        return model
    model = model.to_empty(device=device if device is not None else "cpu")
    model.init_weights()
    return model
