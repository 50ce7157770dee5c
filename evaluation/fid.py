"""FID: torchmetrics' `FrechetInceptionDistance` fed by our FID Inception (pool3, 2048-d).

Frames are sampled from each video (every `frame_stride`-th, at most `max_frames_per_video`),
real frames from the reference videos and fake frames from the generated ones. The result states
the resize protocol, because resize filters alone move FID by several points (clean-fid's study).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from dataset.errors import UserError
from evaluation.inception import FEATURE_DIMS, FIDInceptionFeatures, InceptionResizeConfig


@dataclass(frozen=True, kw_only=True, slots=True)
class FIDConfig:
    """Args:
        frame_stride: use every n-th frame of each video.
        max_frames_per_video: cap per video after striding (0 = no cap).
        batch_size: images per Inception forward.
        dims: feature size: 2048 = pool3 (reported FID); 64/192/768 = earlier blocks (fast smoke runs only).
        resize: resize protocol to 299×299 (default: pytorch-fid's bilinear, no antialias).
    """

    frame_stride: int = 1
    max_frames_per_video: int = 0
    batch_size: int = 32
    dims: int = 2048
    resize: InceptionResizeConfig = field(default_factory=InceptionResizeConfig)

    def __post_init__(self) -> None:
        if self.frame_stride < 1:
            raise UserError(f"fid.frame_stride must be >= 1, got {self.frame_stride}")
        if self.max_frames_per_video < 0:
            raise UserError(f"fid.max_frames_per_video must be >= 0, got {self.max_frames_per_video}")
        if self.batch_size < 1:
            raise UserError(f"fid.batch_size must be >= 1, got {self.batch_size}")
        if self.dims not in FEATURE_DIMS:
            raise UserError(f"fid.dims must be one of {FEATURE_DIMS}, got {self.dims}")


@dataclass(frozen=True, kw_only=True, slots=True)
class FIDResult:
    fid: float
    num_real_images: int
    num_fake_images: int
    resize: str
    dims: int = 2048

    @property
    def features(self) -> str:
        layer = "pool3" if self.dims == 2048 else "block output averaged over space (not standard FID)"
        return f"Inception-v3 (TF 2015-12-05, pytorch-fid port) {layer}, {self.dims}-d; torchmetrics FrechetInceptionDistance"

    def as_dict(self) -> dict[str, object]:
        return {"fid": self.fid, "num_real_images": self.num_real_images, "num_fake_images": self.num_fake_images,
                "resize": self.resize, "dims": self.dims, "features": self.features}


def sample_frames(video: np.ndarray, cfg: FIDConfig) -> np.ndarray:
    """uint8 (T, H, W, 3) -> the frames FID uses, (n, H, W, 3)."""
    frames = video[:: cfg.frame_stride]
    return frames[: cfg.max_frames_per_video] if cfg.max_frames_per_video else frames


class FIDAccumulator:
    """Streams videos into torchmetrics' FID state so no frame set is held in memory.

    Args:
        extractor: the pool3 feature extractor (`load_fid_inception(...)`).
        cfg: frame sampling and batching.
    """

    def __init__(self, extractor: FIDInceptionFeatures, cfg: FIDConfig = FIDConfig()) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.cfg = cfg
        self.extractor = extractor
        # normalize=False: the extractor receives uint8 images untouched and does its own resize.
        self.metric = FrechetInceptionDistance(feature=extractor, normalize=False, reset_real_features=False)
        self.metric.to(next(extractor.parameters()).device)
        self.counts = {True: 0, False: 0}

    def add_video(self, video: np.ndarray, *, real: bool) -> None:
        self.add_images(sample_frames(video, self.cfg), real=real)

    def add_images(self, images: np.ndarray, *, real: bool) -> None:
        """uint8 (N, H, W, 3) RGB images."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        device = self.metric.real_features_sum.device
        for start in range(0, len(images), self.cfg.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + self.cfg.batch_size]))
            # contiguous NCHW: a permuted (channels-last strided) batch takes other conv kernels and moves
            # features by ~1e-6 relative; contiguous input gives pytorch-fid's features bit for bit.
            self.metric.update(batch.permute(0, 3, 1, 2).contiguous().to(device), real=real)  # (B, 3, H, W) uint8
        self.counts[real] += len(images)

    def reset_fake(self) -> None:
        """Forget the generated images, keep the reference statistics (next run / checkpoint)."""
        self.metric.reset()
        self.counts[False] = 0

    def compute(self) -> FIDResult:
        if self.counts[True] < 2 or self.counts[False] < 2:
            raise ValueError(f"FID needs at least 2 real and 2 generated frames, got {self.counts[True]} and {self.counts[False]}")
        return FIDResult(fid=float(self.metric.compute()), num_real_images=self.counts[True],
                         num_fake_images=self.counts[False], resize=self.extractor.resize.describe(),
                         dims=self.extractor.num_features)


def compute_fid(
    real_videos: Iterable[np.ndarray], fake_videos: Iterable[np.ndarray], extractor: FIDInceptionFeatures,
    cfg: FIDConfig = FIDConfig(),
) -> FIDResult:
    """FID between frames sampled from two sets of uint8 (T, H, W, 3) videos (or image stacks)."""
    acc = FIDAccumulator(extractor, cfg)
    for video in real_videos:
        acc.add_video(video, real=True)
    for video in fake_videos:
        acc.add_video(video, real=False)
    return acc.compute()
