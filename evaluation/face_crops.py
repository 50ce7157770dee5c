"""Face tracks and crops for SyncNet / identity, as syncnet_python's `run_pipeline.py` builds them.

Tracking (`face_tracks`, syncnet_python's `track_shot`): per frame the detector's faces; a track
grows greedily by the next detection whose IoU with its last box is > 0.5 within `num_failed_det`
frames; a track is kept when it has more than `min_track` detections and, after linear
interpolation of its boxes over the missed frames, a mean box side above `min_face_size` pixels.
`FaceTracker.track` returns the longest kept track (syncnet_python scores every track; a talking
avatar clip has one speaker), or raises `NoFaceTrack` with the reason. The shot detection that
runs before tracking in syncnet_python is not needed for a generated single-shot clip. The
detector is ours (mediapipe BlazeFace short-range, annotate.face_detector), not S3FD.

syncnet_python crops a face track like this: box half-size s = max(w, h) / 2 and centre, each
median-filtered over time (kernel 13); the frame is padded with grey (110) by s·(1 + 2·cs); the
crop spans [cy - s, cy + s·(1 + 2·cs)] vertically and cx ± s·(1 + cs) horizontally (cs = crop
scale 0.4, so mouth and chin are included) and is resized to 224×224. `make_crop_faces(detect)`
turns any detector returning boxes (e.g. `annotate.face_detector.FaceDetector.detect`, whose faces
carry a normalised `.box`) into the `crop_faces` hook that `evaluation.sync` and `.identity` take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

from dataset.errors import UserError

CROP_SIZE = 224
PAD_VALUE = 110  # syncnet_python pads with this grey


def track_crops(frames: np.ndarray, boxes: np.ndarray, *, crop_scale: float = 0.4, smooth: int = 13) -> np.ndarray:
    """uint8 (T, H, W, 3) frames + (T, 4) pixel boxes (x0, y0, x1, y1) -> uint8 (T, 224, 224, 3) crops."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(frames), 4):
        raise ValueError(f"need one (x0, y0, x1, y1) box per frame, got {boxes.shape} for {len(frames)} frames")
    kernel = min(smooth, len(frames) - (1 - len(frames) % 2))  # medfilt needs an odd kernel <= length
    size = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    if kernel >= 3:
        size, cy, cx = (scipy.signal.medfilt(v, kernel_size=kernel) for v in (size, cy, cx))
    crops = []
    for frame, s, y, x in zip(frames, size, cy, cx):
        pad = int(s * (1 + 2 * crop_scale))
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=PAD_VALUE)
        my, mx = y + pad, x + pad
        face = padded[int(my - s) : int(my + s * (1 + 2 * crop_scale)), int(mx - s * (1 + crop_scale)) : int(mx + s * (1 + crop_scale))]
        t = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float()
        t = F.interpolate(t, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)  # cv2.resize default
        crops.append(t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy())
    return np.stack(crops)


def make_crop_faces(detect: Callable[[np.ndarray], Sequence[Any]], *, crop_scale: float = 0.4) -> Callable[[np.ndarray], np.ndarray]:
    """A `crop_faces(frames)` hook from `detect(frame) -> faces` (best first, `.box` normalised x0, y0, x1, y1).

    Frames without a detection reuse the nearest detected frame's box; a clip with none is an error.
    """

    def crop_faces(frames: np.ndarray) -> np.ndarray:
        height, width = frames.shape[1:3]
        found = [detect(frame) for frame in frames]
        have = [i for i, faces in enumerate(found) if faces]
        if not have:
            raise ValueError(f"no face detected in any of {len(frames)} frames")
        boxes = np.empty((len(frames), 4))
        for i in range(len(frames)):
            nearest = min(have, key=lambda j: abs(j - i))
            x0, y0, x1, y1 = found[nearest][0].box
            boxes[i] = (x0 * width, y0 * height, x1 * width, y1 * height)
        return track_crops(frames, boxes, crop_scale=crop_scale)

    return crop_faces


FACE_CROPS = ("face_track", "whole_frame")


class NoFaceTrack(ValueError):
    """A clip (or reference image) without a usable face track; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FaceTrackConfig:
    """How Sync and identity see faces (syncnet_python's `run_pipeline.py` defaults).

    Args:
        crop: "face_track" (the published protocol: detect, track, crop) or "whole_frame" (every
            frame squashed to 224×224; not comparable with published Sync-C/Sync-D).
        model: face detector .tflite (default: annotate.face_detector.ensure_face_model()).
        min_score: detector confidence threshold.
        min_track: a track needs more than this many detections (syncnet_python --min_track 100 =
            4 s at 25 fps; lower it for shorter clips, and say so next to the numbers).
        num_failed_det: largest gap in frames a track bridges (--num_failed_det).
        min_face_size: smallest mean box side in pixels (--min_face_size).
        iou: IoU a detection needs with the track's last box to join it.
        crop_scale: margin below and beside the face (--crop_scale 0.4).
        smooth: median filter kernel over box size and centre (13).
    """

    crop: str = "face_track"
    model: str = ""
    min_score: float = 0.5
    min_track: int = 100
    num_failed_det: int = 25
    min_face_size: int = 100
    iou: float = 0.5
    crop_scale: float = 0.4
    smooth: int = 13

    def __post_init__(self) -> None:
        if self.crop not in FACE_CROPS:
            raise UserError(f"faces.crop must be one of {FACE_CROPS}, got {self.crop!r}")
        if not 0.0 < self.min_score < 1.0:
            raise UserError(f"faces.min_score must be in (0, 1), got {self.min_score}")
        for key in ("min_track", "num_failed_det", "min_face_size", "smooth"):
            if getattr(self, key) < 0:
                raise UserError(f"faces.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.iou < 1.0:
            raise UserError(f"faces.iou must be in [0, 1), got {self.iou}")

    def describe(self) -> dict[str, Any]:
        if self.crop == "whole_frame":
            return {"crop": "whole_frame", "note": "whole frames resized to 224x224 (not the published Sync protocol)"}
        return {"crop": "face_track", "detector": "mediapipe BlazeFace short-range (annotate.face_detector)",
                "tracking": f"syncnet_python track_shot: IoU > {self.iou}, gaps <= {self.num_failed_det} frames, "
                            f"> {self.min_track} detections, mean face side > {self.min_face_size} px; longest track",
                "geometry": f"syncnet_python crop_video: median filter {self.smooth}, crop scale {self.crop_scale}, 224x224"}


@dataclass(frozen=True, slots=True)
class FaceTrack:
    """Frames [start, stop) of a clip, their interpolated pixel boxes and 224×224 crops."""

    start: int
    stop: int
    boxes: np.ndarray  # (stop - start, 4) x0, y0, x1, y1
    crops: np.ndarray  # uint8 (stop - start, 224, 224, 3)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def face_tracks(detections: Sequence[Sequence[np.ndarray]], cfg: FaceTrackConfig) -> list[tuple[int, np.ndarray]]:
    """Per-frame pixel boxes (best first) -> [(first frame, (n, 4) boxes for every frame of the track)]."""
    remaining = [list(faces) for faces in detections]
    tracks: list[tuple[int, np.ndarray]] = []
    while True:
        frames: list[int] = []
        boxes: list[np.ndarray] = []
        for index, faces in enumerate(remaining):
            if frames and index - frames[-1] > cfg.num_failed_det:
                break
            for j, box in enumerate(faces):
                if not frames or box_iou(box, boxes[-1]) > cfg.iou:
                    frames.append(index)
                    boxes.append(np.asarray(box, dtype=np.float64))
                    del faces[j]
                    break
        if not frames:
            return tracks
        if len(frames) <= cfg.min_track:
            continue
        every = np.arange(frames[0], frames[-1] + 1)
        filled = np.stack([np.interp(every, frames, np.array(boxes)[:, k]) for k in range(4)], axis=1)
        if max(np.mean(filled[:, 2] - filled[:, 0]), np.mean(filled[:, 3] - filled[:, 1])) > cfg.min_face_size:
            tracks.append((frames[0], filled))


class FaceTracker:
    """Detect, track and crop faces as syncnet_python does.

    Args:
        detect: frame -> faces, best first, each with a normalised `.box` (x0, y0, x1, y1), e.g.
            `annotate.face_detector.FaceDetector.detect`.
        cfg: tracking and crop settings.
        close: called by `close()` (releases the detector).
    """

    def __init__(self, detect: Callable[[np.ndarray], Sequence[Any]], cfg: FaceTrackConfig = FaceTrackConfig(), *,
                 close: Callable[[], None] | None = None) -> None:
        self.detect = detect
        self.cfg = cfg
        self._close = close

    def _boxes(self, frame: np.ndarray) -> list[np.ndarray]:
        height, width = frame.shape[:2]
        return [np.array(face.box, dtype=np.float64) * (width, height, width, height) for face in self.detect(frame)]

    def track(self, frames: np.ndarray) -> FaceTrack:
        """The longest face track of a uint8 (T, H, W, 3) clip; NoFaceTrack says why there is none."""
        detections = [self._boxes(frame) for frame in frames]
        found = sum(1 for faces in detections if faces)
        tracks = face_tracks(detections, self.cfg)
        if not tracks:
            raise NoFaceTrack(
                f"no face track: faces detected in {found} of {len(frames)} frames; a track needs more than "
                f"{self.cfg.min_track} detections (faces.min_track), gaps of at most {self.cfg.num_failed_det} frames "
                f"and a mean face side above {self.cfg.min_face_size} px (faces.min_face_size)")
        start, boxes = max(tracks, key=lambda t: len(t[1]))
        stop = start + len(boxes)
        crops = track_crops(frames[start:stop], boxes, crop_scale=self.cfg.crop_scale, smooth=self.cfg.smooth)
        return FaceTrack(start=start, stop=stop, boxes=boxes, crops=crops)

    def crop_image(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, 3) still image -> (1, 224, 224, 3) crop of its best face (identity reference)."""
        boxes = self._boxes(image)
        if not boxes:
            raise NoFaceTrack("no face detected in the reference image")
        return track_crops(image[None], boxes[0][None], crop_scale=self.cfg.crop_scale, smooth=1)

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_face_tracker(cfg: FaceTrackConfig) -> FaceTracker:
    """A FaceTracker on our BlazeFace detector (the model file fetched once, see annotate.face_detector)."""
    from annotate.face_detector import FaceDetector, ensure_face_model

    detector = FaceDetector(ensure_face_model(cfg.model or None), min_score=cfg.min_score)
    return FaceTracker(detector.detect, cfg, close=detector.close)
