"""Sync-C / Sync-D / AV offset as a `Metric`: syncnet_python's pipeline (25 fps, face track, its
audio span; evaluation/sync.py and evaluation/face_crops.py have the protocol)."""

from __future__ import annotations

from typing import Any

from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTracker
from evaluation.metrics.base import Clip, Metric, data_problem
from evaluation.sync import SAMPLES_PER_FRAME, SYNCNET_AUDIO_RATE, SYNCNET_FPS, SyncResult, aggregate_sync, sync_scores
from evaluation.syncnet import load_syncnet


class SyncMetric(Metric):
    name = "sync"

    def __init__(self, cfg: EvalConfig, tracker: FaceTracker | None) -> None:
        self.cfg = cfg
        self.tracker = tracker  # None: whole frames (faces.crop=whole_frame)
        self.net = load_syncnet(cfg.syncnet, device=cfg.device)
        self.results: list[SyncResult] = []

    def protocol(self) -> dict[str, Any]:
        c = self.cfg
        return {"algorithm": "syncnet_python SyncNetInstance.evaluate", "vshift": c.sync.vshift,
                "offsets": 2 * c.sync.vshift + 1, "window_frames": 5, "mfcc": "13 x 100 Hz (python_speech_features)",
                "fps": f"{SYNCNET_FPS} (other rates resampled to it, nearest frame, as ffmpeg -r 25)",
                "audio": f"{SYNCNET_AUDIO_RATE} Hz mono" + (", the face track's span" if c.faces.crop == "face_track" else ""),
                "faces": c.faces.crop, "aggregate": "mean over clips", "weights": c.syncnet}

    def begin_run(self, run: str) -> None:
        self.results = []

    def _score(self, clip: Clip, samples: Any, rate: int) -> SyncResult | str:
        if self.tracker is None:
            return sync_scores(self.net, clip.frames_25, samples, rate, cfg=self.cfg.sync)
        track = clip.face_track(self.tracker)
        if isinstance(track, str):
            return track
        span = samples[track.start * SAMPLES_PER_FRAME : track.stop * SAMPLES_PER_FRAME]
        return sync_scores(self.net, track.crops, span, rate, cfg=self.cfg.sync)

    def add_clip(self, clip: Clip) -> None:
        audio = clip.audio()
        if audio is None:
            clip.record["sync"] = "no audio"
            return
        res = data_problem(clip.record, self.name, lambda: self._score(clip, *audio))
        if isinstance(res, str):
            clip.record["sync"] = res
        elif res is not None:
            self.results.append(res)
            clip.record.update(av_offset=res.offset, sync_c=res.confidence, sync_d=res.min_dist)

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        if not self.results:
            skipped["sync"] = "no clip could be scored (no audio, no face track, or fewer than 6 frames; see per_clip)"
            return
        metrics.update({k: v for k, v in aggregate_sync(self.results).items() if k != "num_clips"})
        details["sync"] = {"num_clips": len(self.results), "offsets": [r.offset for r in self.results]}
