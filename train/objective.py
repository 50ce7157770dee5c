"""Rectified-flow objective as in Wan: shifted timestep sampling, linear noising, velocity target.

    x_t = (1 - sigma) * x_0 + sigma * noise,   v = noise - x_0,   timestep = 1000 * sigma
    sigma = shift * u / (1 + (shift - 1) * u),  u ~ U(0, 1) or logit-normal

(Wan2.1 `wan/utils/fm_solvers.py`, diffusers `FlowMatchEulerDiscreteScheduler` with `shift`).
A shift > 1 moves mass to high noise, which large video latents need. The optional lip weight
multiplies the per-element loss inside the lip region: a box that follows the mouth keypoint frame by
frame where the window has keypoints (FantasyTalking's lip-tracing mask), else the lower part of the
annotation's face box.
Pure tensor functions: no I/O, no globals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dataset.errors import UserError
from dataset.pose import KEYPOINTS

NUM_TRAIN_TIMESTEPS = 1000


@dataclass(frozen=True, kw_only=True, slots=True)
class FlowConfig:
    """Args:
    shift: timestep shift (Wan: 5.0 at 480p/720p for T2V training and sampling; 1.0 = none).
    sampling: how u is drawn before the shift: "uniform" or "logit_normal" (SD3).
    logit_mean / logit_std: parameters of the logit-normal draw.
    lip_weight: loss weight inside the lip region (1.0 = no extra weight).
    lip_box: lip region as (x0, y0, x1, y1) fractions of the face box (lower-middle part by default).
    lip_tracing: with `lip_weight` > 1 and per-frame keypoints (`pose.npy`), the region follows the
        mouth keypoint in every frame (a box of lip_box's size centred on it; FantasyTalking's
        lip-tracing mask); latent frames without a measured mouth keep the static box.
    motion_weight: extra loss weight where the video moves (0 = none; see `motion_weight`): a body
        part that moves covers few latent cells, so a plain MSE is met by copying the first frame.
    """

    shift: float = 5.0
    sampling: Literal["uniform", "logit_normal"] = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    lip_weight: float = 1.0
    lip_box: tuple[float, float, float, float] = (0.2, 0.6, 0.8, 1.0)
    lip_tracing: bool = True
    motion_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.shift <= 0:
            raise UserError(f"flow.shift must be > 0, got {self.shift}")
        if self.sampling not in ("uniform", "logit_normal"):
            raise UserError(f"flow.sampling must be 'uniform' or 'logit_normal', got {self.sampling!r}")
        if self.logit_std <= 0:
            raise UserError(f"flow.logit_std must be > 0, got {self.logit_std}")
        if self.lip_weight < 1.0:
            raise UserError(f"flow.lip_weight must be >= 1, got {self.lip_weight}")
        if self.motion_weight < 0:
            raise UserError(f"flow.motion_weight must be >= 0, got {self.motion_weight}")
        x0, y0, x1, y1 = self.lip_box
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise UserError(f"flow.lip_box must be 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {self.lip_box}")


def shift_sigma(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's time shift: sigma = shift * u / (1 + (shift - 1) * u) (identity for shift = 1)."""
    return shift * u / (1 + (shift - 1) * u)


def sample_sigmas(batch: int, config: FlowConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) float32 noise levels in (0, 1) drawn per `config` (CPU generator, then shifted)."""
    if config.sampling == "uniform":
        u = torch.rand(batch, generator=generator)
    else:
        u = torch.sigmoid(config.logit_mean + config.logit_std * torch.randn(batch, generator=generator))
    return shift_sigma(u, config.shift)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - sigma) x_0 + sigma noise, with sigma (B,) broadcast over the other dims."""
    s = sigma.view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / d sigma = noise - x_0 (what the DiT predicts)."""
    return noise - x0


def timesteps_from_sigmas(sigma: torch.Tensor) -> torch.Tensor:
    """The DiT's timestep input (Wan: 1000 * sigma)."""
    return sigma * NUM_TRAIN_TIMESTEPS


def lip_region(face_box: torch.Tensor, lip_box: tuple[float, float, float, float]) -> torch.Tensor:
    """(B, 4) normalised face boxes (x0, y0, x1, y1) -> (B, 4) lip boxes (fractions of each face box)."""
    x0, y0, x1, y1 = face_box.unbind(-1)
    w, h = x1 - x0, y1 - y0
    fx0, fy0, fx1, fy1 = lip_box
    return torch.stack([x0 + fx0 * w, y0 + fy0 * h, x0 + fx1 * w, y0 + fy1 * h], dim=-1)


def region_weight(boxes: torch.Tensor, grid: tuple[int, int], weight: float) -> torch.Tensor:
    """(B, 4) normalised boxes -> (B, 1, 1, h, w) weights: `weight` on cells whose centre is inside, else 1.

    Boxes with NaN (no face data) give all ones.
    """
    out = torch.where(cells_inside(boxes, grid), torch.tensor(weight), torch.tensor(1.0))
    return out[:, None, None]  # (B, 1, 1, h, w)


def cells_inside(boxes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(..., 4) normalised boxes -> (..., h, w) bool: the grid cells whose centre lies inside (NaN: none)."""
    h, w = grid
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h  # (h,) cell centres
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w  # (w,)
    b = boxes.float().cpu()[..., None, None, :]  # (..., 1, 1, 4)
    return (ys[:, None] >= b[..., 1]) & (ys[:, None] < b[..., 3]) & (xs[None, :] >= b[..., 0]) & (xs[None, :] < b[..., 2])


MOUTH, UPPER_LIP, LOWER_LIP, RIGHT_EAR, LEFT_EAR = (KEYPOINTS.index(k) for k in ("mouth", "upper_lip", "lower_lip",
                                                                                   "right_ear", "left_ear"))


def mouth_boxes(keypoints: torch.Tensor, face_box: torch.Tensor, lip_box: tuple[float, float, float, float]) -> torch.Tensor:
    """(B, F, K, 3) keypoints + (B, 4) face boxes -> (B, F, 4) lip boxes per video frame, NaN where
    the frame has no mouth. Centre: the lips' midpoint when both are measured, else the mouth
    keypoint; size: lip_box's share of the face box, or of the ear-to-ear distance (as a square
    face) when the clip has no face box."""
    kp = keypoints.float()
    seen = (kp[..., 2] > 0) & torch.isfinite(kp[..., :2]).all(-1)  # (B, F, K)
    lips = seen[..., UPPER_LIP] & seen[..., LOWER_LIP]
    centre = torch.where(lips[..., None], (kp[..., UPPER_LIP, :2] + kp[..., LOWER_LIP, :2]) / 2, kp[..., MOUTH, :2])
    has = lips | seen[..., MOUTH]
    fb = face_box.float().to(kp.device)[:, None]  # (B, 1, 4)
    face_w, face_h = fb[..., 2] - fb[..., 0], fb[..., 3] - fb[..., 1]  # (B, 1), NaN without a face box
    ears = torch.linalg.vector_norm(kp[..., RIGHT_EAR, :2] - kp[..., LEFT_EAR, :2], dim=-1)  # (B, F)
    ears = torch.where(seen[..., RIGHT_EAR] & seen[..., LEFT_EAR], ears, torch.full_like(ears, float("nan")))
    width = torch.where(torch.isfinite(face_w), face_w.expand_as(ears), ears)
    height = torch.where(torch.isfinite(face_h), face_h.expand_as(ears), ears)
    fx0, fy0, fx1, fy1 = lip_box
    half_w, half_h = (fx1 - fx0) * width / 2, (fy1 - fy0) * height / 2
    boxes = torch.stack([centre[..., 0] - half_w, centre[..., 1] - half_h, centre[..., 0] + half_w, centre[..., 1] + half_h], -1)
    return torch.where(has[..., None], boxes, torch.full_like(boxes, float("nan")))


def lip_tracing_weight(
    keypoints: torch.Tensor, face_box: torch.Tensor, lip_box: tuple[float, float, float, float],
    grid: tuple[int, int, int], stride: int, weight: float,
) -> torch.Tensor:
    """(B, 1, T, h, w) weights: `weight` on the latent cells inside the lip box of any video frame a
    latent frame encodes (`model.pose.latent_frame_index`), 1 elsewhere; a latent frame whose frames
    have no mouth falls back to the static lip region of the face box (`lip_region`)."""
    from model.pose import latent_frame_index

    n_t, h, w = grid
    boxes = mouth_boxes(keypoints, face_box, lip_box).cpu()  # (B, F, 4)
    index = latent_frame_index(n_t, stride)  # (T, s) video frames per latent frame
    per_latent = boxes[:, index]  # (B, T, s, 4)
    traced = cells_inside(per_latent, (h, w)).any(dim=2)  # (B, T, h, w): NaN boxes cover nothing
    static = cells_inside(lip_region(face_box, lip_box), (h, w))  # (B, h, w)
    has_mouth = torch.isfinite(per_latent).all(-1).any(-1)  # (B, T)
    region = torch.where(has_mouth[..., None, None], traced, static[:, None])
    return torch.where(region, torch.tensor(weight), torch.tensor(1.0))[:, None]


def motion_weight(x0: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, C, F, h, w) clean latents -> (B, 1, F, h, w) weights 1 + weight * d / max(d), where d is the
    channel-mean distance of each latent cell from the same cell of latent frame 0 (the reference):
    cells where the body moves count up to 1 + weight times a still background cell."""
    d = (x0.float() - x0[:, :, :1].float()).abs().mean(dim=1, keepdim=True)  # (B, 1, F, h, w)
    peak = d.flatten(1).amax(dim=1).clamp(min=1e-6).view(-1, 1, 1, 1, 1)
    return 1.0 + weight * d / peak


def flow_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, frame_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted MSE over (B, C, F, h, w), averaged per sample then over the batch.

    Args:
        pred, target: (B, C, F, h, w).
        weight: broadcastable per-element weight (e.g. `region_weight`); normalised so the mean is 1
            per sample, which keeps the loss scale independent of the face size.
        frame_mask: (B, F) bool, frames that count (False: a clean reference frame).
    """
    err = (pred.float() - target.float()) ** 2  # (B, C, F, h, w)
    w = torch.ones_like(err) if weight is None else weight.to(err).expand_as(err)
    if frame_mask is not None:
        w = w * frame_mask.to(err)[:, None, :, None, None]
    per_sample = (err * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp(min=1e-8)  # (B,)
    return per_sample.mean()
