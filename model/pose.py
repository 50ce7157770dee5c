"""Pose condition with pose-free inference in one model (ApoAvatar; TALK-Act's structural pose guidance).

Per-frame keypoints (the `dataset.pose` layout: (F, K, 3) x, y normalised to the frame, confidence)
are rendered as one Gaussian map per keypoint and video frame on the latent grid, the frames that
one latent frame compresses stacked as channels (the VAE's temporal stride; the first latent frame
repeats video frame 0, as Wan's causal VAE sees it):

    maps (B, K * s, T, h, w) -> Conv3d(patch, stride patch) -> SiLU -> Linear (zero-initialised)
        -> added to the video tokens after the patch embedding

so every token sees the keypoints that fall in its patch and frames. The last linear starts at
zero, so a model that gains the branch predicts exactly what it did before; a sample without pose
(no keypoint measured anywhere in its window, or dropped during training) adds exactly nothing, so
one checkpoint samples with a pose (`--pose FILE`) and without one.

Written by hand: the rendering is the contract between our keypoint layout and the DiT's latent
grid (no library renders keypoint heatmaps onto a video VAE's latent grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True, kw_only=True, slots=True)
class PoseConfig:
    """Args:
    num_keypoints: the first keypoints of `dataset.pose`'s layout the branch reads: 15 (face and
        body, layout v1; the default) or 57 (with the 21 landmarks of each hand, layout v2).
    sigma: radius of a keypoint's Gaussian on its map, in latent cells.
    hidden: channels of the map encoder (patch conv) before the projection to the model width.
    """

    num_keypoints: int = 15
    sigma: float = 0.75
    hidden: int = 64

    def __post_init__(self) -> None:
        if self.num_keypoints < 1:
            raise ValueError(f"model.pose.num_keypoints must be >= 1, got {self.num_keypoints}")
        if not self.sigma > 0:
            raise ValueError(f"model.pose.sigma must be > 0 latent cells, got {self.sigma}")
        if self.hidden < 1:
            raise ValueError(f"model.pose.hidden must be >= 1, got {self.hidden}")


def latent_frame_index(num_latent: int, stride: int) -> torch.Tensor:
    """(T, stride) video frame of each slot of each latent frame: latent 0 is frame 0 (repeated),
    latent t >= 1 covers frames (t - 1) * stride + 1 .. t * stride (Wan's causal VAE)."""
    first = torch.zeros(1, stride, dtype=torch.long)
    rest = torch.arange(1, (num_latent - 1) * stride + 1).view(num_latent - 1, stride)
    return torch.cat([first, rest]) if num_latent > 1 else first


def render_pose_maps(pose: torch.Tensor, grid: tuple[int, int, int], stride: int, sigma: float) -> torch.Tensor:
    """(B, F, K, 3) keypoints -> (B, K * stride, T, h, w) Gaussian maps on the latent grid (T, h, w).

    F must be 1 + stride * (T - 1) video frames. A keypoint's map is its confidence times a Gaussian
    of `sigma` latent cells around its position; confidence 0 (or a NaN position) renders nothing.
    """
    if pose.ndim != 4 or pose.shape[-1] != 3:
        raise ValueError(f"pose must be (B, frames, keypoints, 3), got shape {tuple(pose.shape)}")
    n_t, n_h, n_w = grid
    frames = 1 + stride * (n_t - 1)
    if pose.shape[1] != frames:
        raise ValueError(f"pose has {pose.shape[1]} frames; {n_t} latent frames (temporal stride {stride}) need {frames}")
    pose = pose.float()
    xy, conf = pose[..., :2], pose[..., 2]
    valid = (conf > 0) & torch.isfinite(xy).all(-1)
    conf = torch.where(valid, conf.clamp(0.0, 1.0), torch.zeros_like(conf))
    xy = torch.nan_to_num(xy, nan=0.0, posinf=0.0, neginf=0.0)
    index = latent_frame_index(n_t, stride).to(pose.device).flatten()
    xy, conf = xy[:, index], conf[:, index]  # (B, T * s, K, ...)
    cx = (torch.arange(n_w, device=pose.device) + 0.5)  # cell centres in latent cells
    cy = (torch.arange(n_h, device=pose.device) + 0.5)
    dx = (xy[..., 0, None] * n_w - cx) ** 2  # (B, T*s, K, w)
    dy = (xy[..., 1, None] * n_h - cy) ** 2  # (B, T*s, K, h)
    maps = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * sigma**2)) * conf[..., None, None]  # (B, T*s, K, h, w)
    b, k = pose.shape[0], pose.shape[2]
    maps = maps.view(b, n_t, stride * k, n_h, n_w)  # channel = slot * K + keypoint
    return maps.permute(0, 2, 1, 3, 4).contiguous()


def has_pose(pose: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the sample's window has at least one measured keypoint."""
    valid = (pose[..., 2] > 0) & torch.isfinite(pose[..., :2]).all(-1)
    return valid.flatten(1).any(1)


class PoseEmbedding(nn.Module):
    """(B, F, K, 3) keypoints -> (B, L, dim) additive video-token offsets (0 for samples without pose)."""

    def __init__(self, config: PoseConfig, dim: int, patch_size: tuple[int, int, int], temporal_stride: int) -> None:
        super().__init__()
        self.config, self.temporal_stride = config, temporal_stride
        self.conv = nn.Conv3d(config.num_keypoints * temporal_stride, config.hidden, kernel_size=patch_size, stride=patch_size)
        self.proj = nn.Linear(config.hidden, dim)

    def forward(self, pose: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        if pose.shape[2] < self.config.num_keypoints:
            raise ValueError(f"pose has {pose.shape[2]} keypoints per frame, model.pose.num_keypoints is {self.config.num_keypoints}")
        pose = pose[:, :, : self.config.num_keypoints]  # the layout's prefix (v2 appends the hands to v1)
        maps = render_pose_maps(pose, grid, self.temporal_stride, self.config.sigma).to(self.conv.weight.dtype)
        feats = self.conv(maps).flatten(2).transpose(1, 2)  # (B, L, hidden)
        out = self.proj(F.silu(feats))
        return out * has_pose(pose).to(out.device, out.dtype)[:, None, None]  # pose-free samples: exactly nothing

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Conv like the patch embedding, zero output: the branch is neutral until trained."""
        nn.init.xavier_uniform_(self.conv.weight.flatten(1))
        nn.init.zeros_(self.conv.bias)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)


def pose_batch(poses: list[torch.Tensor | None], num_frames: int, num_keypoints: int) -> torch.Tensor:
    """(B, F, K, 3) float32 from per-sample (F, K, 3) arrays; None -> nothing measured (pose-free)."""
    out = torch.full((len(poses), num_frames, num_keypoints, 3), math.nan)
    out[..., 2] = 0.0
    for i, pose in enumerate(poses):
        if pose is not None:
            out[i] = torch.as_tensor(pose, dtype=torch.float32)
    return out


def without_pose(pose: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """The batch with the flagged samples' keypoints removed (confidence 0, NaN positions)."""
    drop = drop.to(pose.device)[:, None, None]
    out = pose.clone()
    out[..., :2] = out[..., :2].masked_fill(drop[..., None], math.nan)
    out[..., 2] = out[..., 2].masked_fill(drop, 0.0)
    return out
