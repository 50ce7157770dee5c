"""Embeddings of the Wan DiT: sinusoidal timesteps, time/text/image projections and 3D RoPE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) timesteps -> (N, dim) [cos | sin] features (diffusers `Timesteps(flip_sin_to_cos=True,
    downscale_freq_shift=0)`, the embedding Wan uses)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None, :]  # (N, dim/2)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    """Linear -> SiLU -> Linear on sinusoidal features (kept in fp32 by the trainer)."""

    def __init__(self, freq_dim: int, dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_sinusoid(t, self.freq_dim).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(emb)))


class Modulation(nn.Module):
    """Wan's learned shift/scale(/gate) table added to the timestep projection, in fp32.

    A module (not a bare parameter) so it can be kept in fp32 as a unit: `VideoDiT.fp32_modules`,
    FSDP2's fp32 units (train/parallelize.py) and bf16 loading all treat it like the time embedding.

    Args:
        rows: 6 in a block (shift, scale, gate for self-attention and the FFN), 2 at the head.
        dim: model width.
    """

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(1, rows, dim) / dim**0.5)

    def forward(self, temb: torch.Tensor) -> torch.Tensor:
        """(B, L|1, rows, D) timestep projection -> (B, L|1, rows, D) fp32 sum."""
        return self.table.unsqueeze(0).float() + temb.float()


class TextProjection(nn.Module):
    """UMT5 features (text_dim) -> model width: Linear -> GELU(tanh) -> Linear."""

    def __init__(self, text_dim: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(text_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(text), approximate="tanh"))


class ImageProjection(nn.Module):
    """CLIP image tokens (image_dim) -> model width, as Wan2.1 I2V: LN -> MLP(GELU) -> LN (fp32 norms).

    Args:
        image_dim: CLIP hidden width (1280 for ViT-H/14).
        dim: model width.
        pos_embed_len: learned positions for two concatenated images (Wan FLF2V); None for I2V.
    """

    def __init__(self, image_dim: int, dim: int, pos_embed_len: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(image_dim)
        self.proj_in = nn.Linear(image_dim, image_dim)
        self.proj_out = nn.Linear(image_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, pos_embed_len, image_dim)) if pos_embed_len else None

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.pos_embed is not None:
            b, n, c = image.shape
            image = image.view(-1, 2 * n, c) + self.pos_embed  # two images -> one sequence
        x = _fp32_layer_norm(self.norm1, image)
        x = self.proj_out(F.gelu(self.proj_in(x)))
        return _fp32_layer_norm(self.norm2, x)


def _fp32_layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    return F.layer_norm(x.float(), norm.normalized_shape, weight, bias, norm.eps).type_as(x)


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the parameter/input dtype (bf16-safe)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _fp32_layer_norm(self, x)


class RotaryEmbedding3D(nn.Module):
    """Wan's 3D RoPE: head channels split into (time, height, width) bands, angles per latent position.

    Computed on the fly (no buffers), so a model built on the meta device needs no re-init.

    Args:
        head_dim: channels per head; height/width bands get 2*(head_dim//6) each, time the rest.
        theta: RoPE base.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.h_dim = self.w_dim = 2 * (head_dim // 6)
        self.t_dim = head_dim - self.h_dim - self.w_dim
        self.theta = theta

    def _axis(self, n: int, dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # float64 angles as diffusers/Wan, then fp32 cos/sin interleaved per channel pair.
        inv = 1.0 / (self.theta ** (torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim))
        ang = torch.outer(torch.arange(n, dtype=torch.float64, device=device), inv)  # (n, dim/2)
        return ang.cos().repeat_interleave(2, dim=1).float(), ang.sin().repeat_interleave(2, dim=1).float()

    def forward(self, f: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Angles for an (f, h, w) latent grid -> (cos, sin), each (1, f*h*w, 1, head_dim)."""
        bands = [self._axis(n, d, device) for n, d in ((f, self.t_dim), (h, self.h_dim), (w, self.w_dim))]
        out = []
        for i in range(2):  # cos, then sin
            t_, h_, w_ = (b[i] for b in bands)
            grid = torch.cat(
                [
                    t_.view(f, 1, 1, -1).expand(f, h, w, -1),
                    h_.view(1, h, 1, -1).expand(f, h, w, -1),
                    w_.view(1, 1, w, -1).expand(f, h, w, -1),
                ],
                dim=-1,
            )
            out.append(grid.reshape(1, f * h * w, 1, -1))  # (1, F*H*W, 1, Dh)
        return out[0], out[1]


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> Linear."""

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(dim, ffn_dim)
        self.proj_out = nn.Linear(ffn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_out(F.gelu(self.proj_in(x), approximate="tanh"))
