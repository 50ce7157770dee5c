"""One interface for every metric, and the per-clip context they share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.face_crops import FaceTrack, FaceTracker, NoFaceTrack
from evaluation.sync import SYNCNET_FPS
from evaluation.video_folder import Video, read_audio, read_video, resample_fps


@dataclass
class Clip:
    """A generated clip and what metrics derive from it, each computed once and shared.

    `record` is the clip's row of the report's `per_clip` (values, or a note saying why not)."""

    key: str
    path: Path
    video: Video
    reference_dir: Path
    reference_path: Path
    record: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> np.ndarray:
        return self.video.frames

    @property
    def fps(self) -> float:
        return self.video.fps

    @property
    def frames_25(self) -> np.ndarray:
        """The frames at SyncNet's 25 fps (resampled, nearest frame, when the video has another rate)."""
        if "frames_25" not in self._cache:
            same = abs(self.video.fps - SYNCNET_FPS) < 1e-3
            self._cache["frames_25"] = self.video.frames if same else resample_fps(self.video, SYNCNET_FPS)
        return self._cache["frames_25"]

    def audio(self) -> tuple[np.ndarray, int] | None:
        if "audio" not in self._cache:
            self._cache["audio"] = read_audio(self.path)
        return self._cache["audio"]

    def face_track(self, tracker: FaceTracker) -> FaceTrack | str:
        """The face track of the 25 fps frames, or the reason there is none."""
        if "track" not in self._cache:
            try:
                self._cache["track"] = tracker.track(self.frames_25)
                self.record["face_track"] = [self._cache["track"].start, self._cache["track"].stop]
            except NoFaceTrack as err:
                self._cache["track"] = str(err)
        return self._cache["track"]

    def reference_frames(self) -> np.ndarray:
        if "reference_frames" not in self._cache:
            self._cache["reference_frames"] = read_video(self.reference_path).frames
        return self._cache["reference_frames"]


class Metric:
    """A metric over runs of generated clips.

    Lifecycle: `add_reference` for every reference video (only when `uses_reference_videos`), then per
    run `begin_run`, `add_clip` for each clip (per-clip values or notes go into `clip.record`), and
    `finish_run` (dataset figures into `metrics`/`details`, or a reason into `skipped`).
    `protocol()` says how it was measured (the report's `protocol[name]`).
    """

    name: str = ""
    uses_reference_videos: bool = False
    timelines: Sequence[dict[str, Any]] = ()  # per-clip timelines for the report's plots (actions)

    def protocol(self) -> dict[str, Any]:
        raise NotImplementedError

    def add_reference(self, frames: np.ndarray) -> None:
        pass

    def begin_run(self, run: str) -> None:
        pass

    def add_clip(self, clip: Clip) -> None:
        raise NotImplementedError

    def finish_run(self, metrics: dict[str, Any], details: dict[str, Any], skipped: dict[str, str]) -> None:
        raise NotImplementedError


def data_problem(record: dict[str, Any], name: str, fn: Any) -> Any:
    """fn(), or None with the reason in `record[name]` when the data cannot be scored (a ValueError)."""
    try:
        return fn()
    except ValueError as err:
        record[name] = str(err)
        return None
