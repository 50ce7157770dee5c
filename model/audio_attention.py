"""Per-frame audio cross-attention: latent frame f's video tokens attend to its own audio window.

Audio tokens arrive already windowed, (B, F, W, D) with a (B, F, W) validity mask (see
`audio_windows`), so the layer groups queries per latent frame exactly like PACA. The output
projection starts at zero (FantasyTalking), so an imported Wan model is unchanged at init.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from model.attention import Attention, Backend, guarded_attention


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioAttentionConfig:
    """Args:
    audio_dim: width of the audio features fed to the DiT (wav2vec2-base: 768, large: 1024).
    layers: block indices that get audio attention; None = every block (FantasyTalking).
    """

    audio_dim: int = 768
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.audio_dim <= 0:
            raise ValueError(f"audio.audio_dim must be > 0, got {self.audio_dim}")
        if self.layers is not None and any(i < 0 for i in self.layers):
            raise ValueError(f"audio.layers must be block indices >= 0, got {self.layers}")


class AudioCrossAttnProcessor:
    """Queries (B, F*S, D) -> (B*F, S, D); keys from that frame's audio window only."""

    def __call__(
        self, attn: "AudioCrossAttention", x: torch.Tensor, audio: torch.Tensor, audio_mask: torch.Tensor
    ) -> torch.Tensor:
        b, lq, _ = x.shape
        _, n_frames, w, _ = audio.shape
        if lq % n_frames:
            raise ValueError(f"{lq} query tokens cannot be split into {n_frames} latent frames")
        # 1. Projections, grouped per latent frame
        q = attn.norm_q(attn.to_q(x)).unflatten(-1, (attn.heads, -1))  # (B, F*S, H, Dh)
        q = q.reshape(b * n_frames, lq // n_frames, attn.heads, -1)  # (B*F, S, H, Dh)
        tokens = audio.flatten(0, 1)  # (B*F, W, D)
        k = attn.norm_k(attn.to_k(tokens)).unflatten(-1, (attn.heads, -1))  # (B*F, W, H, Dh)
        v = attn.to_v(tokens).unflatten(-1, (attn.heads, -1))
        # 2. Windowed attention; frames without audio get zeros
        out = guarded_attention(q, k, v, audio_mask.flatten(0, 1), backend=attn.backend)  # (B*F, S, H, Dh)
        out = out.reshape(b, lq, -1).type_as(x)  # (B, F*S, D)
        # 3. Zero-initialised output projection
        return attn.to_out(out)


class AudioCrossAttention(Attention):
    """Per-latent-frame audio cross-attention with a zero-initialised output projection.

    Args:
        dim: model width (audio tokens are projected to it once, by the DiT's audio projector).
        heads: attention heads.
        eps: RMSNorm epsilon.
        backend: attention kernel.
    """

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6, backend: Backend = "sdpa") -> None:
        super().__init__(dim, heads, eps=eps, zero_init_out=True, processor=AudioCrossAttnProcessor(), backend=backend)

    def forward(self, x: torch.Tensor, audio: torch.Tensor, audio_mask: torch.Tensor) -> torch.Tensor:
        """x (B, F*S, D); audio (B, F, W, D) windows; audio_mask (B, F, W) bool. Returns (B, F*S, D)."""
        return self.processor(self, x, audio, audio_mask)
