"""Audio features -> per-latent-frame windows, and the projector into the DiT width.

Latent frame f covers [start_s, end_s) (see `phase_layout.latent_frame_times`); its window holds
the audio feature frames overlapping [start_s - context_s, end_s + context_s). Windows are padded to
one width W per batch with a validity mask, so attention never slices by a hard-coded length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.embeddings import FP32LayerNorm
from model.phase_layout import latent_frame_times

_EPS = 1e-9


@dataclass(frozen=True, kw_only=True, slots=True)
class AudioWindowConfig:
    """Args:
    context_s: seconds of audio added on each side of a latent frame's interval (FantasyTalking uses
        about one video frame each side: a ~4-frame window per latent frame, here 4 + 2 frames).
    feature_hz: audio feature rate (wav2vec2 at 16 kHz: 50 Hz).
    stride: VAE temporal stride.
    """

    context_s: float = 0.04
    feature_hz: float = 50.0
    stride: int = 4

    def __post_init__(self) -> None:
        if self.context_s < 0:
            raise ValueError(f"audio_windows.context_s must be >= 0, got {self.context_s}")
        if self.feature_hz <= 0:
            raise ValueError(f"audio_windows.feature_hz must be > 0, got {self.feature_hz}")
        if self.stride < 1:
            raise ValueError(f"audio_windows.stride must be >= 1, got {self.stride}")


def audio_window_index(
    num_latent: int, fps: float, num_features: int, config: AudioWindowConfig = AudioWindowConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature indices (F, W) long and validity (F, W) bool of each latent frame's audio window."""
    times = latent_frame_times(num_latent, fps, config.stride)  # (F, 2) seconds
    first = torch.floor((times[:, 0] - config.context_s) * config.feature_hz + _EPS).long()  # (F,)
    last = torch.ceil((times[:, 1] + config.context_s) * config.feature_hz - _EPS).long() - 1
    width = int((last - first).max().item()) + 1
    index = first[:, None] + torch.arange(width)[None, :]  # (F, W)
    valid = (index <= last[:, None]) & (index >= 0) & (index < num_features)
    return index.clamp(0, max(num_features - 1, 0)), valid


def batch_audio_windows(
    num_latent: int, fps: Sequence[float], num_features: Sequence[int], config: AudioWindowConfig = AudioWindowConfig()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample windows padded to one width: index (B, F, W) long, mask (B, F, W) bool."""
    pairs = [audio_window_index(num_latent, r, n, config) for r, n in zip(fps, num_features, strict=True)]
    width = max(i.shape[1] for i, _ in pairs)
    index = torch.stack([F.pad(i, (0, width - i.shape[1])) for i, _ in pairs])
    mask = torch.stack([F.pad(m, (0, width - m.shape[1]), value=False) for _, m in pairs])
    return index, mask


def gather_windows(tokens: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, Ta, D) tokens, (B, F, W) indices -> (B, F, W, D) windows."""
    b, n_frames, w = index.shape
    flat = index.reshape(b, n_frames * w, 1).expand(-1, -1, tokens.shape[-1])  # (B, F*W, D)
    return tokens.gather(1, flat).view(b, n_frames, w, -1)  # (B, F, W, D)


class AudioProjector(nn.Module):
    """Audio features (audio_dim) -> model width: Linear -> GELU(tanh) -> Linear -> LayerNorm (fp32).

    Args:
        audio_dim: input feature width.
        dim: model width.
    """

    def __init__(self, audio_dim: int, dim: int) -> None:
        super().__init__()
        self.proj_in = nn.Linear(audio_dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        self.norm = FP32LayerNorm(dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj_out(F.gelu(self.proj_in(features), approximate="tanh")))


def feature_count(num_samples: int, conv_kernel: Sequence[int], conv_stride: Sequence[int]) -> int:
    """Frames a wav2vec2 conv stack yields for `num_samples` input samples."""
    n = num_samples
    for k, s in zip(conv_kernel, conv_stride, strict=True):
        n = math.floor((n - k) / s) + 1
    return max(n, 0)
