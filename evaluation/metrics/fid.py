"""FID as a `Metric` (evaluation/fid.py has the protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluation.config import EvalConfig
from evaluation.fid import FIDAccumulator
from evaluation.inception import load_fid_inception
from evaluation.metrics.base import Clip, Metric, data_problem


class FIDMetric(Metric):
    name = "fid"
    uses_reference_videos = True

    def __init__(self, cfg: EvalConfig) -> None:
        self.cfg = cfg
        extractor = load_fid_inception(cfg.fid_weights, resize=cfg.fid.resize, dims=cfg.fid.dims, device=cfg.device)
        self.acc = FIDAccumulator(extractor, cfg.fid)

    def protocol(self) -> dict[str, Any]:
        c = self.cfg.fid
        return {"features": f"Inception-v3 FID (pytorch-fid port), {c.dims}-d" + (" pool3" if c.dims == 2048 else " (NOT standard FID)"),
                "resize": c.resize.describe(), "frame_stride": c.frame_stride, "max_frames_per_video": c.max_frames_per_video,
                "statistic": "torchmetrics FrechetInceptionDistance (unbiased covariance)", "weights": self.cfg.fid_weights}

    def add_reference(self, frames: np.ndarray) -> None:
        self.acc.add_video(frames, real=True)

    def begin_run(self, run: str) -> None:
        self.acc.reset_fake()

    def add_clip(self, clip: Clip) -> None:
        self.acc.add_video(clip.frames, real=False)

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        res = data_problem(skipped, self.name, self.acc.compute)
        if res is not None:
            metrics["fid"] = res.fid
            details["fid"] = res.as_dict()
