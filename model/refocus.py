"""Audio–pose prior refocusing (ApoAvatar): the pose guidance follows the speech's intensity.

ApoAvatar computes a prosodic intensity per frame from the audio and scales the pose guidance by
it, so strong accents amplify gestures and quiet passages damp them. Our form, per latent frame f
(the VAE's `s` video frames that frame compresses, frame 0 repeated for latent 0, as the pose
branch stacks them):

    a_f  = the s per-video-frame intensities (`dataset.audio_intensity`, 0..1)
    h_f  = SiLU(Linear(a_f))
    pose-controlled samples:  pose tokens of frame f  *  (1 + gain(h_f))      (refocused guidance)
    pose-free samples:        prior(h_f) added to every video token of frame f (the pose prior
                              that stands in for the missing pose, from the audio alone)

`gain` and `prior` start at zero, so the branch is neutral until trained; a sample without an
intensity (none stored, or its audio dropped for guidance) gets nothing. The refocused tokens are
part of the video tokens every block's frame-wise audio–video interaction (`model.av_interaction`)
reads, which is how ApoAvatar's audio update sees "the refocused pose prior".

Written by hand: a per-latent-frame gain on our pose branch's tokens; no library has it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from model.pose import latent_frame_index


@dataclass(frozen=True, kw_only=True, slots=True)
class RefocusConfig:
    """Args:
    hidden: width of the intensity encoder (per latent frame, from the `s` frame intensities).
    """

    hidden: int = 64

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ValueError(f"model.refocus.hidden must be >= 1, got {self.hidden}")


def has_intensity(intensity: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the sample's window has an audio intensity (NaN = none)."""
    return torch.isfinite(intensity).all(1)


def intensity_batch(values: list, num_frames: int) -> torch.Tensor:
    """(B, F) float32 from per-sample (F,) arrays; None -> NaN (no intensity)."""
    out = torch.full((len(values), num_frames), float("nan"))
    for i, value in enumerate(values):
        if value is not None:
            out[i] = torch.as_tensor(value, dtype=torch.float32)[:num_frames]
    return out


class AudioPoseRefocus(nn.Module):
    """(B, F) audio intensity + the pose branch's tokens -> (B, L, dim) offsets to add to the video tokens."""

    def __init__(self, config: RefocusConfig, dim: int, temporal_stride: int) -> None:
        super().__init__()
        self.config, self.temporal_stride = config, temporal_stride
        self.encode = nn.Linear(temporal_stride, config.hidden)
        self.gain = nn.Linear(config.hidden, dim)
        self.prior = nn.Linear(config.hidden, dim)

    def forward(self, intensity: torch.Tensor, pose_tokens: torch.Tensor | None, posed: torch.Tensor,
                n_t: int, tokens: tuple[int, int, int]) -> torch.Tensor:
        """intensity (B, 1 + s * (n_t - 1)) for `n_t` latent frames; pose_tokens (B, L, dim) or None
        (no pose given); posed (B,) bool: the sample has a pose (its tokens are refocused, it gets no
        prior); tokens: the (t, h, w) token grid (a temporal patch > 1 averages its latent frames)."""
        frames = 1 + self.temporal_stride * (n_t - 1)
        if intensity.ndim != 2 or intensity.shape[1] < frames:
            raise ValueError(f"audio intensity must be (B, >= {frames}) for {n_t} latent frames, got {tuple(intensity.shape)}")
        known = has_intensity(intensity[:, :frames])
        index = latent_frame_index(n_t, self.temporal_stride).to(intensity.device)  # (T, s)
        a = torch.nan_to_num(intensity[:, :frames].float(), nan=0.0)[:, index]  # (B, T, s)
        h = F.silu(self.encode(a.to(self.encode.weight.dtype)))  # (B, T, hidden)
        g_t, g_h, g_w = tokens
        if g_t != n_t:
            h = h.unflatten(1, (g_t, n_t // g_t)).mean(2)
        per_token = g_h * g_w
        prior = self.prior(h).repeat_interleave(per_token, dim=1)  # (B, L, dim)
        out = prior * (~posed).to(prior.dtype)[:, None, None]
        if pose_tokens is not None:
            gain = self.gain(h).repeat_interleave(per_token, dim=1)
            out = out + pose_tokens.to(gain.dtype) * gain  # zero for pose-free samples (their tokens are zero)
        return out * known.to(out.dtype)[:, None, None]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Encoder like Wan's linears, zero gain and prior: neutral until trained."""
        nn.init.xavier_uniform_(self.encode.weight)
        nn.init.zeros_(self.encode.bias)
        for layer in (self.gain, self.prior):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
