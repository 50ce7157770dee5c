"""Attention: one `attention()` dispatch, the projection module, and the self-attention processor.

Layout convention everywhere in `model/`: tokens are (B, L, H, Dh) when split into heads and
(B, L, D) otherwise. Boolean masks mean "True = may attend" and broadcast to (B, H, Lq, Lk).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

Backend = Literal["sdpa", "math", "flash", "efficient", "cudnn"]
BACKENDS: tuple[str, ...] = ("sdpa", "math", "flash", "efficient", "cudnn")


@contextmanager
def _sdpa_backend(backend: str) -> Iterator[None]:
    """Pin one fused SDPA kernel; "sdpa" lets torch choose."""
    if backend == "sdpa":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kernel = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[backend]
    with sdpa_kernel(kernel):
        yield


def kernel_for(backend: str, *, masked: bool, device_type: str) -> str:
    """The kernel one call runs with. The configured backend applies as is to unmasked calls (video
    self-attention, Wan's text cross-attention); masked calls (PACA, audio windows) pinned to "flash"
    or "cudnn" on CUDA use the memory-efficient kernel, since those CUDA kernels take no boolean mask."""
    if masked and device_type == "cuda" and backend in ("flash", "cudnn"):
        return "efficient"
    return backend


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    backend: Backend = "sdpa",
) -> torch.Tensor:
    """Scaled dot-product attention on (B, L, H, Dh) tensors; returns (B, Lq, H, Dh).

    Args:
        q, k, v: queries (B, Lq, H, Dh), keys and values (B, Lk, H, Dh).
        mask: optional boolean mask broadcastable to (B, H, Lq, Lk); True = attend. A row with no
            True entry yields NaN (as in SDPA); the grouped processors guard against it.
        backend: "sdpa" (torch picks a kernel), "flash" / "efficient" / "cudnn" (pinned kernel; a
            masked call on CUDA falls back to "efficient", see `kernel_for`) or "math" (explicit fp32
            softmax; the reference used by tests and the dense benchmark).
    """
    if backend not in BACKENDS:
        raise ValueError(f"attention backend must be one of {BACKENDS}, got {backend!r}")
    # (B, L, H, Dh) -> (B, H, L, Dh)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if backend == "math":
        scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = (scores.softmax(dim=-1) @ v.float()).type_as(q)
    else:
        with _sdpa_backend(kernel_for(backend, masked=mask is not None, device_type=q.device.type)):
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return out.transpose(1, 2)  # (B, Lq, H, Dh)


def guarded_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, *, backend: Backend = "sdpa"
) -> torch.Tensor:
    """`attention` with a (B, Lk) key mask where a row may be all False (no visible key).

    Such rows would give NaN; they attend to everything instead and their output is zeroed, so a
    frame with nothing to look at receives no update (and no gradient) from this layer.
    """
    has_key = mask.any(dim=-1)  # (B,)
    safe = mask | ~has_key[:, None]
    out = attention(q, k, v, safe[:, None, None, :], backend=backend)  # (B, Lq, H, Dh)
    return out * has_key[:, None, None, None].to(out.dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of x (B, L, H, Dh) by (1, L, 1, Dh) angles, in fp32."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # each (B, L, H, Dh/2)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.type_as(x)


class AttentionProcessor(Protocol):
    """The math of an attention layer; the module it receives owns the weights."""

    def __call__(self, attn: "Attention", x: torch.Tensor, *args, **kwargs) -> torch.Tensor: ...


class SelfAttnProcessor:
    """Full self-attention over all video tokens with 3D RoPE (Wan `attn1`)."""

    def __call__(
        self, attn: "Attention", x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))  # (B, L, H, Dh)
        k = attn.norm_k(attn.to_k(x)).unflatten(-1, (attn.heads, -1))
        v = attn.to_v(x).unflatten(-1, (attn.heads, -1))
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = attention(q, k, v, backend=attn.backend).flatten(2)  # (B, L, D)
        return attn.to_out(out.type_as(x))


class Attention(nn.Module):
    """Query/key/value/output projections with RMS q/k norm across heads; math in `processor`.

    Args:
        dim: model width D (queries and output).
        heads: number of heads; D must be divisible by it.
        kv_dim: width of the key/value source (defaults to `dim`).
        eps: RMSNorm epsilon.
        qk_norm: apply RMSNorm over all heads to q and k (Wan: "rms_norm_across_heads").
        zero_init_out: start the output projection at zero, so a new branch is a no-op at init.
        processor: the math; `SelfAttnProcessor()` when None.
        backend: attention kernel passed to `attention()`.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        kv_dim: int | None = None,
        eps: float = 1e-6,
        qk_norm: bool = True,
        zero_init_out: bool = False,
        processor: AttentionProcessor | None = None,
        backend: Backend = "sdpa",
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim must be divisible by heads, got dim={dim}, heads={heads}")
        kv_dim = dim if kv_dim is None else kv_dim
        self.heads = heads
        self.backend = backend
        self.zero_init_out = zero_init_out
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(dim, eps=eps) if qk_norm else nn.Identity()
        self.processor: AttentionProcessor = processor if processor is not None else SelfAttnProcessor()
        if zero_init_out:
            nn.init.zeros_(self.to_out.weight)
            nn.init.zeros_(self.to_out.bias)

    def set_processor(self, processor: AttentionProcessor) -> None:
        self.processor = processor

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return self.processor(self, x, *args, **kwargs)
