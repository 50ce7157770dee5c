"""Phase-Aware Cross-Attention (PACA): video queries attend to the base caption and the active phases.

The text is a base block plus phase blocks (block ids per token, see `phase_layout`). Queries are
grouped per latent frame, (B, F*S, D) -> (B*F, S, D), and each group sees the keys allowed by a
(B, F, Lk) boolean mask gathered from block ids and the frame->phase map: the mask is F rows per
sample, never (Lq x Lk), and no Python loop runs over phases. Each frame gathers only its visible
keys (`PhaseKeys`, compacted to the largest visible count), so PACA does less work than plain
cross-attention over the whole padded text. Without block ids the layer is Wan's
plain cross-attention over all tokens (PACA neutral), which is what weight import reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.attention import Attention, Backend, attention, guarded_attention


@dataclass(frozen=True, kw_only=True, slots=True)
class PhaseAttentionConfig:
    """Args:
    pad_visible: padding tokens (block id -1) stay visible to every frame. Wan's pipeline attends to
        its zero-padded 512 tokens; PACA masks them by default.
    compact_keys: trim each frame's key list to the largest visible count (one host sync per
        forward; skipped automatically while torch.compile traces); False keeps all Lk keys per
        frame (sync-free, for CUDA graphs).
    """

    pad_visible: bool = False
    compact_keys: bool = True


def phase_key_mask(block_ids: torch.Tensor, frame_phases: torch.Tensor, pad_visible: bool = False) -> torch.Tensor:
    """(B, Lk) block ids + (B, F, 1 + P) frame->block map -> (B, F, Lk) bool key mask.

    Key j is visible to latent frame f iff frame f's map column `block_ids[j]` is True; block 0 is
    the base caption (the map's column 0, True for every frame). Padding (-1) follows `pad_visible`.
    """
    if block_ids.ndim != 2 or frame_phases.ndim != 3 or block_ids.shape[0] != frame_phases.shape[0]:
        raise ValueError(
            f"block_ids must be (B, Lk) and frame_phases (B, F, 1+P), got {tuple(block_ids.shape)} "
            f"and {tuple(frame_phases.shape)}"
        )
    b, f, _ = frame_phases.shape
    idx = block_ids.clamp(min=0)[:, None, :].expand(b, f, -1)  # (B, F, Lk)
    visible = frame_phases.gather(2, idx)  # (B, F, Lk)
    pad = (block_ids < 0)[:, None, :]  # (B, 1, Lk)
    return torch.where(pad, torch.full_like(visible, pad_visible), visible)


@dataclass(frozen=True, slots=True)
class PhaseKeys:
    """Which text keys each latent frame attends to, compacted: visible keys first, padded to K.

    Built once per forward (`PhaseKeys.build`) and shared by every PACA layer, so each layer gathers
    (B, F, K) keys instead of copying all Lk keys per frame: memory and FLOPs scale with the keys a
    frame can see (base + overlapping phases), not with the text budget.

    Attributes:
        index: (B, F, K) long key positions; visible keys first, in text order.
        mask: (B, F, K) bool, True where `index` points at a visible key.
        every_frame_sees_a_key: known True -> no NaN guard needed (saves a full-size output copy).
    """

    index: torch.Tensor
    mask: torch.Tensor
    every_frame_sees_a_key: bool = False

    @classmethod
    def build(
        cls, block_ids: torch.Tensor, frame_phases: torch.Tensor, *, pad_visible: bool = False, compact: bool = True
    ) -> "PhaseKeys":
        """From block ids (B, Lk) and the frame map (B, F, 1+P). `compact` trims K to the largest
        visible count (one host sync per call); otherwise K = Lk (no sync, e.g. under CUDA graphs)."""
        mask = phase_key_mask(block_ids, frame_phases, pad_visible)  # (B, F, Lk)
        order = torch.argsort((~mask).to(torch.uint8), dim=-1, stable=True)  # visible first, text order kept
        k, complete = mask.shape[-1], False
        # Under torch.compile the host sync would break the graph: keep all Lk keys (same result).
        if compact and not torch.compiler.is_compiling():
            counts = mask.sum(dim=-1)  # (B, F)
            most, least = torch.stack([counts.max(), counts.min()]).tolist()  # the one host sync
            k, complete = max(most, 1), least > 0
        index = order[..., :k]  # (B, F, K)
        return cls(index=index, mask=mask.gather(2, index), every_frame_sees_a_key=complete)


def per_frame_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keys: PhaseKeys, *, backend: Backend = "sdpa"
) -> torch.Tensor:
    """Attention of queries grouped by latent frame over each frame's selected keys.

    Args:
        q: (B, F*S, H, Dh) queries in frame-major order (S tokens per latent frame).
        k, v: (B, Lk, H, Dh).
        keys: per-frame key selection (B, F, K).
    Returns:
        (B, F*S, H, Dh); frames that see no key get zeros.
    """
    b, lq, h, dh = q.shape
    n_frames, n_keys = keys.index.shape[1], keys.index.shape[2]
    if lq % n_frames:
        raise ValueError(f"{lq} query tokens cannot be split into {n_frames} latent frames")
    q = q.reshape(b * n_frames, lq // n_frames, h, dh)  # (B*F, S, H, Dh)
    idx = keys.index.reshape(b, n_frames * n_keys, 1, 1).expand(-1, -1, h, dh)  # (B, F*K, H, Dh)
    k = k.gather(1, idx).view(b * n_frames, n_keys, h, dh)  # (B*F, K, H, Dh)
    v = v.gather(1, idx).view(b * n_frames, n_keys, h, dh)
    mask = keys.mask.flatten(0, 1)  # (B*F, K)
    if keys.every_frame_sees_a_key:
        out = attention(q, k, v, mask[:, None, None, :], backend=backend)  # (B*F, S, H, Dh)
    else:
        out = guarded_attention(q, k, v, mask, backend=backend)
    return out.reshape(b, lq, h, dh)  # (B, F*S, H, Dh)


class PhaseCrossAttnProcessor:
    """The PACA math (optionally plus Wan2.1-I2V image-token attention, which every frame sees)."""

    def __init__(self, pad_visible: bool = False) -> None:
        self.pad_visible = pad_visible

    def __call__(
        self,
        attn: "PhaseCrossAttention",
        x: torch.Tensor,
        text: torch.Tensor,
        *,
        block_ids: torch.Tensor | None = None,
        frame_phases: torch.Tensor | None = None,
        phase_keys: PhaseKeys | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        # 1. Projections: (B, L, D) -> (B, L, H, Dh)
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))
        k = attn.norm_k(attn.to_k(text)).unflatten(-1, (attn.heads, -1))
        v = attn.to_v(text).unflatten(-1, (attn.heads, -1))

        # 2. Text attention: plain (neutral) or grouped per latent frame (PACA)
        if phase_keys is None and block_ids is not None:
            if frame_phases is None:
                raise ValueError("PACA needs frame_phases together with block_ids")
            phase_keys = PhaseKeys.build(block_ids, frame_phases, pad_visible=self.pad_visible)
        if phase_keys is None:
            out = attention(q, k, v, backend=attn.backend)  # (B, Lq, H, Dh)
        else:
            out = per_frame_attention(q, k, v, phase_keys, backend=attn.backend)
        out = out.flatten(2).type_as(q)  # (B, Lq, D)

        # 3. Image tokens (Wan2.1 I2V): their own keys/values, added to the text result
        if image is not None:
            if attn.add_k_proj is None:
                raise ValueError("image tokens given but this layer was built without image_kv (image_dim)")
            k_img = attn.norm_added_k(attn.add_k_proj(image)).unflatten(-1, (attn.heads, -1))
            v_img = attn.add_v_proj(image).unflatten(-1, (attn.heads, -1))
            out = out + attention(q, k_img, v_img, backend=attn.backend).flatten(2).type_as(q)

        # 4. Output projection
        return attn.to_out(out)


class PhaseCrossAttention(Attention):
    """Text cross-attention with PACA; optional image key/value projections (Wan2.1 I2V).

    Args:
        dim: model width.
        heads: attention heads.
        image_kv: add `add_k_proj`/`add_v_proj` for image tokens already projected to `dim`.
        eps: RMSNorm epsilon.
        config: PACA options.
        backend: attention kernel.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        *,
        image_kv: bool = False,
        eps: float = 1e-6,
        config: PhaseAttentionConfig = PhaseAttentionConfig(),
        backend: Backend = "sdpa",
    ) -> None:
        super().__init__(dim, heads, eps=eps, processor=PhaseCrossAttnProcessor(config.pad_visible), backend=backend)
        self.add_k_proj = nn.Linear(dim, dim) if image_kv else None
        self.add_v_proj = nn.Linear(dim, dim) if image_kv else None
        self.norm_added_k = nn.RMSNorm(dim, eps=eps) if image_kv else None

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        *,
        block_ids: torch.Tensor | None = None,
        frame_phases: torch.Tensor | None = None,
        phase_keys: PhaseKeys | None = None,
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, F*S, D) video tokens; text (B, Lk, D); block_ids (B, Lk) with frame_phases (B, F, 1+P),
        or the same precomputed as `phase_keys` (the DiT builds it once for all layers); neither =
        PACA neutral; image (B, Li, D). Returns (B, F*S, D)."""
        return self.processor(
            self, x, text, block_ids=block_ids, frame_phases=frame_phases, phase_keys=phase_keys, image=image
        )
