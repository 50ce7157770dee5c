"""Identity similarity as a `Metric`: the reference face against each frame's face (same 25 fps face
track and crops as Sync; evaluation/identity.py has the embedding protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTracker, NoFaceTrack
from evaluation.identity import identity_similarity, load_face_embedder
from evaluation.metrics.base import Clip, Metric
from evaluation.video_folder import read_reference_image

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class IdentityMetric(Metric):
    name = "identity"

    def __init__(self, cfg: EvalConfig, tracker: FaceTracker | None) -> None:
        self.cfg = cfg
        self.tracker = tracker  # None: whole frames (faces.crop=whole_frame)
        self.net = load_face_embedder(cfg.face_embedder, device=cfg.device)
        self.values: list[float] = []

    def protocol(self) -> dict[str, Any]:
        c = self.cfg
        return {"input_size": c.identity.input_size, "frame_stride": c.identity.frame_stride,
                "aggregate": "mean cosine over frames, then over clips", "weights": c.face_embedder}

    def begin_run(self, run: str) -> None:
        self.values = []

    def _similarity(self, clip: Clip, image: np.ndarray) -> float | str:
        if self.tracker is None:
            return identity_similarity(self.net, image, clip.frames_25, cfg=self.cfg.identity)
        track = clip.face_track(self.tracker)
        if isinstance(track, str):
            return track
        try:
            reference = self.tracker.crop_image(image)
        except NoFaceTrack as err:
            return str(err)
        return identity_similarity(self.net, reference[0], track.crops, cfg=self.cfg.identity)

    def add_clip(self, clip: Clip) -> None:
        has_image = any((clip.reference_dir / f"{clip.key}{s}").is_file() for s in _IMAGE_SUFFIXES)
        image, source = read_reference_image(clip.reference_dir, clip.key, None if has_image else clip.reference_frames())
        sim = self._similarity(clip, image)
        if isinstance(sim, str):
            clip.record["identity"] = sim
        else:
            self.values.append(sim)
            clip.record.update(identity=sim, identity_reference=source)

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        if not self.values:
            skipped["identity"] = "no clip could be scored (no face track or no face in the reference; see per_clip)"
            return
        metrics["identity"] = float(np.mean(self.values))
        details["identity"] = {"num_clips": len(self.values)}
