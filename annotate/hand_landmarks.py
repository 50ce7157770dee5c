"""Hand landmarks (MediaPipe hands, 21 points per hand) and how the model is obtained.

mediapipe >= 0.10.30 ships no model files and no `hand_landmarker.task` is on the package index,
but the mediapipe 0.10.21 wheel (already fetched for the face detector) holds the legacy graph's
pair: `palm_detection_full.tflite` (the palm detector) and `hand_landmark_full.tflite`. As with
BlazePose (`annotate.body_landmarks`), the Tasks API runs them once each carries TFLite metadata
saying how to normalise its input image (the legacy graph hard-coded it: both [0, 1]; with [-1, 1]
the palm detector finds nothing) and they are packed as Google's `hand_landmarker.task` is (a zip of
`hand_detector.tflite` and `hand_landmarks_detector.tflite`). The weights are untouched.
`ensure_hand_bundle()` builds the bundle once into the cache, next to the face models:

    ~/.cache/actavatar/models/hand_landmarker_v1.task   ($ACTAVATAR_CACHE/models/ when set)

Checked on a drawn hand (tests/annotate/test_hand_landmarks.py): wrist, thumb, index, middle,
ring and little fingertips in MediaPipe's canonical order, each within a few pixels of the drawing.
No photograph of a bare hand ships with the packages we install, so a real photograph is not tested.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.body_landmarks import with_normalization
from annotate.face_detector import FaceModelError, MediapipeTask, default_model_path, ensure_wheel_bundle, zip_task_bundle

BUNDLE_NAME = "hand_landmarker_v1.task"
DETECTOR_MEMBER = "mediapipe/modules/palm_detection/palm_detection_full.tflite"
DETECTOR_SHA256 = "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54"
LANDMARK_MEMBER = "mediapipe/modules/hand_landmark/hand_landmark_full.tflite"
LANDMARK_SHA256 = "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3"
# input ranges of the legacy graph (palm_detection_cpu / hand_landmark_cpu): value = (pixel - mean) / std
DETECTOR_NORM = (0.0, 255.0)  # [0, 1]
LANDMARK_NORM = (0.0, 255.0)  # [0, 1]
NUM_LANDMARKS = 21


def default_bundle_path() -> Path:
    return default_model_path().parent / BUNDLE_NAME


def build_bundle(detector: bytes, landmarks: bytes) -> bytes:
    """The task bundle's bytes (Google's hand_landmarker.task layout, normalisation metadata added)."""
    return zip_task_bundle([("hand_detector.tflite", with_normalization(detector, *DETECTOR_NORM)),
                            ("hand_landmarks_detector.tflite", with_normalization(landmarks, *LANDMARK_NORM))])


def ensure_hand_bundle(path: str | Path | None = None) -> Path:
    """Return a path to the hand landmarker task bundle, building it once from the 0.10.21 wheel.

    Raises:
        FaceModelError: the bundle is missing and the wheel could not be fetched or checked.
    """
    return ensure_wheel_bundle(
        Path(path).expanduser() if path is not None else default_bundle_path(),
        {DETECTOR_MEMBER: DETECTOR_SHA256, LANDMARK_MEMBER: LANDMARK_SHA256},
        lambda m: build_bundle(m[DETECTOR_MEMBER], m[LANDMARK_MEMBER]), "hand landmark bundle",
        f"annotate.hand_landmarks.build_bundle on {DETECTOR_MEMBER} and {LANDMARK_MEMBER}")


@dataclass(frozen=True, slots=True)
class Hand:
    """One hand: `points` (21, 2) x, y normalised to the frame in MediaPipe's order (0 wrist, 1-4
    thumb, 5-8 index, 9-12 middle, 13-16 ring, 17-20 little finger, base to tip); `mirrored_label`
    is MediaPipe's handedness ("Left" / "Right"), which assumes a mirrored (selfie) image: on an
    unmirrored frame "Left" is the person's right hand."""

    points: np.ndarray
    mirrored_label: str

    @property
    def person_side(self) -> str:
        """"right" or "left": the person's hand by MediaPipe's label, for an unmirrored frame."""
        return "right" if self.mirrored_label == "Left" else "left"


class HandLandmarker(MediapipeTask):
    """MediaPipe hand landmarker (Tasks API) on the bundle above, for one clip in video mode: hands
    found in one frame are tracked into the next (the palm detector reruns while fewer than
    `max_hands` are tracked), which is why one instance serves one clip's frames in order.

    Args:
        bundle: the .task file (see `ensure_hand_bundle`).
        fps: the clip's frame rate (the frames' timestamps).
        max_hands: hands returned per frame.
        min_score: detection, presence and tracking thresholds (MediaPipe's default 0.5).
    """

    def __init__(self, bundle: str | Path, *, fps: float = 25.0, max_hands: int = 2, min_score: float = 0.5) -> None:
        bundle = Path(bundle)
        if not bundle.is_file():
            raise FaceModelError(f"hand landmark bundle not found: {bundle} (see annotate.hand_landmarks.ensure_hand_bundle)")
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle)), running_mode=vision.RunningMode.VIDEO, num_hands=max_hands,
            min_hand_detection_confidence=min_score, min_hand_presence_confidence=min_score, min_tracking_confidence=min_score)
        self._task = vision.HandLandmarker.create_from_options(options)
        self._fps = fps

    def detect(self, frame: np.ndarray) -> list[Hand]:
        """The next frame of the clip, uint8 (H, W, 3) RGB -> the hands found."""
        result = self._task.detect_for_video(self._image(frame), self._next_stamp_ms())
        return [Hand(np.array([[p.x, p.y] for p in points], np.float32), label[0].category_name)
                for points, label in zip(result.hand_landmarks, result.handedness)]
