"""FVD as a `Metric` (evaluation/fvd.py has the protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluation.config import EvalConfig
from evaluation.fvd import DETECTOR_KWARGS, I3DFeatures, fvd_result, load_i3d
from evaluation.metrics.base import Clip, Metric, data_problem


class FVDMetric(Metric):
    name = "fvd"
    uses_reference_videos = True

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        self.detector = load_i3d(cfg.i3d, device=cfg.device)
        self.real = I3DFeatures(self.detector, cfg.fvd, real=True)
        self.fake = I3DFeatures(self.detector, cfg.fvd)

    def protocol(self) -> dict[str, Any]:
        c = self.cfg.fvd
        return {"features": "I3D Kinetics-400 logits (400-d)", "detector_kwargs": DETECTOR_KWARGS,
                "num_frames": c.num_frames, "frame_stride": c.frame_stride, "clips_per_video": c.clips_per_video,
                "start": c.describe_start(), "seed": c.seed, "max_clips": c.max_clips,
                "fps": c.fps, "frame_rate": "native (clips are not resampled)",
                "statistic": "StyleGAN-V (covariance / N), scipy sqrtm", "weights": self.cfg.i3d}

    def add_reference(self, frames: np.ndarray) -> None:
        self.real.add_video(frames)

    def begin_run(self, run: str) -> None:
        self.fake = I3DFeatures(self.detector, self.cfg.fvd)

    def add_clip(self, clip: Clip) -> None:
        self.fake.add_video(clip.frames)

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        res = data_problem(skipped, self.name, lambda: fvd_result(self.real, self.fake, self.cfg.fvd))
        if res is not None:
            metrics["fvd"] = res.fvd
            details["fvd"] = res.as_dict()
