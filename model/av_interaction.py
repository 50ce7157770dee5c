"""Frame-wise audio–video interaction (ApoAvatar): before a block's audio cross-attention, each latent
frame's audio window is updated from that frame's current video tokens.

    audio'[f] = audio[f] + to_out(Attention(q = audio[f], k, v = video tokens of latent frame f))

Together with the audio cross-attention that follows (video queries, audio keys) this is the
bidirectional cross-attention the summary describes: the audio features become video-aware (and
pose-aware when the model has the pose branch, whose keypoints are already in the video tokens)
before they drive the frame. Per frame only: window f never sees another frame's tokens. The
output projection starts at zero, so a model that gains the module predicts exactly as before.
"""

from __future__ import annotations

import torch

from model.attention import Attention, Backend, attention


class VideoToAudioProcessor:
    """Audio windows (B, F, W, D) attend to their own latent frame's video tokens (B, F*S, D)."""

    def __call__(self, attn: "AudioVideoInteraction", audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        b, n_frames, w, d = audio.shape
        if video.shape[1] % n_frames:
            raise ValueError(f"{video.shape[1]} video tokens cannot be split into {n_frames} latent frames")
        tokens = video.reshape(b * n_frames, video.shape[1] // n_frames, d)  # (B*F, S, D): frame-major token order
        q = attn.norm_q(attn.to_q(audio.flatten(0, 1))).unflatten(-1, (attn.heads, -1))  # (B*F, W, H, Dh)
        k = attn.norm_k(attn.to_k(tokens)).unflatten(-1, (attn.heads, -1))  # (B*F, S, H, Dh)
        v = attn.to_v(tokens).unflatten(-1, (attn.heads, -1))
        out = attention(q, k, v, backend=attn.backend).reshape(b, n_frames, w, d)
        return audio + attn.to_out(out.type_as(audio))


class AudioVideoInteraction(Attention):
    """Per-latent-frame video -> audio cross-attention with a zero-initialised output projection.

    Args:
        dim: model width (audio windows are already projected to it).
        heads: attention heads.
        eps: RMSNorm epsilon.
        backend: attention kernel.
    """

    def __init__(self, dim: int, heads: int, *, eps: float = 1e-6, backend: Backend = "sdpa") -> None:
        super().__init__(dim, heads, eps=eps, zero_init_out=True, processor=VideoToAudioProcessor(), backend=backend)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero output: the module is neutral until trained."""
        torch.nn.init.zeros_(self.to_out.weight)
        torch.nn.init.zeros_(self.to_out.bias)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """audio (B, F, W, D) windows; video (B, F*S, D) normalised tokens. Returns updated windows."""
        return self.processor(self, audio, video)
