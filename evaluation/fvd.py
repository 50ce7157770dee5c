"""FVD with StyleGAN-V's protocol: I3D (Kinetics-400, TF-Hub TorchScript port) logits as features.

Clips (StyleGAN-V `compute_fvd` + `VideoFramesFolderDataset(load_n_consecutive=...)`): each video gives
`clips_per_video` consecutive clips of `num_frames` frames taken every `frame_stride`-th frame
(`fvd2048_16f`: 16 frames, stride 1, one clip; `..._subsample8f`: stride 8). A reference (real) clip
starts at a random frame (`start: random`, the default, as StyleGAN-V's real dataset does, drawn from
`seed` in key order; offsets in [0, T - n·stride + stride - 1]) or at frame 0 (`start: "0"`); a
generated clip always starts at frame 0 (StyleGAN-V sets `load_n_consecutive_random_offset=False` for
generated videos). Videos shorter than the clips are skipped and counted (`discard_short_videos`).
At most `max_clips` clips per side are used, the first in key order (StyleGAN-V's `max_items`: 2048
real, 2048 generated for fvd2048). Clips go to the detector as uint8 (B, 3, T, H, W) with
`rescale=True, resize=True, return_features=True`, so the detector maps [0, 255] to [-1, 1] and
resizes to 224×224 itself. Statistics are StyleGAN-V's (`FeatureStats.get_mean_cov`: covariance
divided by N, not N-1); the distance is `frechet.py`. FVD moves with clip count, frame count, fps
and clip start, so the result records them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dataset.errors import UserError
from evaluation.frechet import frechet_distance, gaussian_stats
from evaluation.weights import load_torchscript

I3D_HOW = (
    "Get i3d_torchscript.pt (StyleGAN-V's FVD detector, linked from universome/stylegan-v "
    "src/metrics/frechet_video_distance.py) on a machine with network access, copy it here and pass its path (--i3d)."
)
DETECTOR_KWARGS = {"rescale": True, "resize": True, "return_features": True}
CLIP_STARTS = ("random", "0")


@dataclass(frozen=True, kw_only=True, slots=True)
class FVDConfig:
    """Args:
        num_frames: frames per clip (16 = StyleGAN-V fvd2048_16f).
        frame_stride: take every n-th frame inside a clip (1; 8 for the `subsample8f` variant).
        clips_per_video: consecutive clips taken from each video (StyleGAN-V: 1).
        start: where a reference clip starts: "random" (StyleGAN-V, seeded) or "0" (first frame).
            Generated clips always start at frame 0.
        seed: seed of the random reference offsets (recorded in the protocol).
        max_clips: at most this many clips per side, first in key order (StyleGAN-V fvd2048: 2048; 0 = all).
        fps: frame rate of the videos, recorded in the result (DESIGN: 25).
        batch_size: clips per detector call.
    """

    num_frames: int = 16
    frame_stride: int = 1
    clips_per_video: int = 1
    start: str = "random"
    seed: int = 0
    max_clips: int = 2048
    fps: float = 25.0
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.num_frames < 10:
            # I3D's temporal receptive field: fewer frames collapse the time axis (common_metrics needs >= 10).
            raise UserError(f"fvd.num_frames must be >= 10, got {self.num_frames}")
        for key, value in (("frame_stride", self.frame_stride), ("clips_per_video", self.clips_per_video),
                           ("batch_size", self.batch_size)):
            if value < 1:
                raise UserError(f"fvd.{key} must be >= 1, got {value}")
        if self.fps <= 0:
            raise UserError(f"fvd.fps must be > 0, got {self.fps}")
        if str(self.start) not in CLIP_STARTS:
            raise UserError(f"fvd.start must be one of {CLIP_STARTS}, got {self.start!r}")
        if self.max_clips < 0:
            raise UserError(f"fvd.max_clips must be >= 0 (0 = no cap), got {self.max_clips}")

    def describe_start(self) -> str:
        if str(self.start) == "random":
            return f"reference clips at a random offset (seed {self.seed}), generated clips at frame 0 (StyleGAN-V)"
        return "every clip at frame 0"


@dataclass(frozen=True, kw_only=True, slots=True)
class FVDResult:
    fvd: float
    num_real_clips: int
    num_fake_clips: int
    num_frames: int
    frame_stride: int
    fps: float
    skipped_short_videos: int
    start: str = "every clip at frame 0"
    capped_clips: int = 0
    features: str = "I3D Kinetics-400 logits (400-d), detector(rescale=True, resize=True, return_features=True)"

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


def load_i3d(path: str | Path, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """StyleGAN-V's `i3d_torchscript.pt` (or a test export of `evaluation.i3d.InceptionI3d`)."""
    return load_torchscript(path, what="I3D (FVD)", how=I3D_HOW, device=device)


def video_clips(video: np.ndarray, cfg: FVDConfig, offset: int = 0) -> list[np.ndarray]:
    """uint8 (T, H, W, 3) -> up to `clips_per_video` clips of (num_frames, H, W, 3) from frame `offset`;
    [] if the video is shorter than the clips (checked at offset 0, like StyleGAN-V's discard)."""
    span = cfg.num_frames * cfg.frame_stride
    # A clip exists when the video holds num_frames * stride frames; from `offset` its last frame read
    # (offset + span - stride) must still be inside the video.
    return [video[offset + i * span : offset + (i + 1) * span : cfg.frame_stride]
            for i in range(cfg.clips_per_video)
            if (i + 1) * span <= len(video) and offset + (i + 1) * span - cfg.frame_stride < len(video)]


def random_offset(num_frames_video: int, cfg: FVDConfig, rng: np.random.Generator) -> int:
    """StyleGAN-V's offset: uniform in [0, T - n·stride + stride - 1] (the last frame read is still
    inside the video); with several clips per video, n counts the frames of all of them."""
    need = cfg.clips_per_video * cfg.num_frames * cfg.frame_stride
    if num_frames_video < need:
        return 0
    return int(rng.integers(0, num_frames_video - need + cfg.frame_stride))


class I3DFeatures:
    """Collects detector logits for clips, batched. `skipped` counts videos shorter than one clip,
    `capped` the clips left out by `max_clips`.

    Args:
        real: reference videos (clip start per `cfg.start`) or generated ones (always frame 0).
    """

    def __init__(self, detector: torch.nn.Module, cfg: FVDConfig, *, real: bool = False) -> None:
        self.detector = detector
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed) if real and str(cfg.start) == "random" else None
        self.num_clips = 0
        self.capped = 0
        first = next(iter(detector.parameters()), None)
        self.device = first.device if first is not None else torch.device("cpu")
        self.features: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.skipped = 0

    def add_video(self, video: np.ndarray) -> None:
        video = np.asarray(video)
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        offset = random_offset(len(video), self.cfg, self.rng) if self.rng is not None else 0
        clips = video_clips(video, self.cfg, offset)
        if not clips:
            self.skipped += 1
        for clip in clips:
            if self.cfg.max_clips and self.num_clips >= self.cfg.max_clips:
                self.capped += 1
                continue
            self.num_clips += 1
            self.pending.append(clip)
            if len(self.pending) == self.cfg.batch_size:
                self._flush()

    @torch.no_grad()
    def _flush(self) -> None:
        if not self.pending:
            return
        batch = torch.from_numpy(np.stack(self.pending)).permute(0, 4, 1, 2, 3).contiguous()  # (B, 3, T, H, W) uint8
        self.pending = []
        feats = self.detector(batch.to(self.device), **DETECTOR_KWARGS)
        self.features.append(feats.float().cpu().numpy())

    def result(self) -> np.ndarray:
        self._flush()
        return np.concatenate(self.features) if self.features else np.zeros((0, 0), np.float32)


def fvd_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance with StyleGAN-V's biased covariance (divided by N)."""
    return frechet_distance(*gaussian_stats(real, ddof=0), *gaussian_stats(fake, ddof=0))


def compute_fvd(
    real_videos: Iterable[np.ndarray], fake_videos: Iterable[np.ndarray], detector: torch.nn.Module,
    cfg: FVDConfig = FVDConfig(),
) -> FVDResult:
    """FVD between two sets of uint8 (T, H, W, 3) videos."""
    real, fake = I3DFeatures(detector, cfg, real=True), I3DFeatures(detector, cfg)
    for video in real_videos:
        real.add_video(video)
    for video in fake_videos:
        fake.add_video(video)
    return fvd_result(real, fake, cfg)


def fvd_result(real: I3DFeatures, fake: I3DFeatures, cfg: FVDConfig) -> FVDResult:
    real_f, fake_f = real.result(), fake.result()
    if len(real_f) < 2 or len(fake_f) < 2:
        raise ValueError(
            f"FVD needs at least 2 real and 2 generated clips of {cfg.num_frames} frames (stride {cfg.frame_stride}), "
            f"got {len(real_f)} and {len(fake_f)} ({real.skipped + fake.skipped} video(s) too short)"
        )
    return FVDResult(fvd=fvd_from_features(real_f, fake_f), num_real_clips=len(real_f), num_fake_clips=len(fake_f),
                     num_frames=cfg.num_frames, frame_stride=cfg.frame_stride, fps=cfg.fps,
                     skipped_short_videos=real.skipped + fake.skipped, start=cfg.describe_start(),
                     capped_clips=real.capped + fake.capped)
