"""Face landmarks (MediaPipe face mesh, 468 points + iris estimates = 478) and how the model is obtained.

mediapipe >= 0.10.30 ships no model files and no `face_landmarker.task` is on the package index,
but the mediapipe 0.10.21 wheel (already fetched for the face detector) holds the legacy graph's
`face_landmark.tflite`. The Tasks API of mediapipe 1.2 runs it when it is packed, with the
short-range BlazeFace detector, into a task bundle (a zip holding `face_detector.tflite` and
`face_landmarks_detector.tflite`, the layout of Google's `face_landmarker.task`). The
attention variant in the same wheel does not fit the Tasks graph (its outputs are ordered
differently), so this is the mesh without attention refinement. `ensure_landmarker_bundle()` builds
the bundle once into the cache, next to the detector:

    ~/.cache/actavatar/models/face_landmarker_v1.task   ($ACTAVATAR_CACHE/models/ when set)

Use: confirming BlazeFace detections in the face filter (the mesh's face-presence score rejects
object close-ups that BlazeFace alone accepts). Its lip landmarks do not follow the synthetic
puppets' drawn mouths, so the AV-sync measure does not use them (`annotate.av_sync`).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.face_detector import (MODEL_SHA256, WHEEL_MEMBER, WHEEL_SPEC, FaceModelError, MediapipeTask,
                                    default_model_path, fetch_wheel_members, zip_task_bundle)
from dataset.atomic import atomic_write_bytes

BUNDLE_NAME = "face_landmarker_v1.task"
LANDMARK_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
LANDMARK_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"


def default_bundle_path() -> Path:
    return default_model_path().parent / BUNDLE_NAME


def build_bundle(detector: bytes, landmarks: bytes) -> bytes:
    """The task bundle's bytes (Google's face_landmarker.task layout)."""
    return zip_task_bundle([("face_detector.tflite", detector), ("face_landmarks_detector.tflite", landmarks)])


def ensure_landmarker_bundle(path: str | Path | None = None) -> Path:
    """Return a path to the face landmarker task bundle, building it once from the 0.10.21 wheel.

    Raises:
        FaceModelError: the bundle is missing and the wheel could not be fetched or checked.
    """
    target = Path(path).expanduser() if path is not None else default_bundle_path()
    if target.is_file():
        return target
    try:
        members = fetch_wheel_members({WHEEL_MEMBER: MODEL_SHA256, LANDMARK_MEMBER: LANDMARK_SHA256}, target.parent)
        atomic_write_bytes(target, build_bundle(members[WHEEL_MEMBER], members[LANDMARK_MEMBER]))
    except (OSError, zipfile.BadZipFile, KeyError) as err:
        raise FaceModelError(
            f"face landmark bundle {target} is missing and could not be built ({err}). Build it on a "
            f"machine with the package index: `pip download {WHEEL_SPEC} --no-deps --only-binary=:all: "
            f"--platform manylinux_2_28_x86_64`, then zip {WHEEL_MEMBER} as face_detector.tflite and "
            f"{LANDMARK_MEMBER} as face_landmarks_detector.tflite into {target}"
        ) from None
    return target


@dataclass(frozen=True, slots=True)
class FaceMesh:
    """One face: `points` (478, 3) normalised x, y (z relative depth) and the landmark box."""

    points: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        x, y = self.points[:468, 0], self.points[:468, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())


class FaceLandmarker(MediapipeTask):
    """MediaPipe face landmarker (Tasks API, image mode) on the bundle above.

    Args:
        bundle: the .task file (see `ensure_landmarker_bundle`).
        min_presence: the mesh's face-presence threshold (MediaPipe's default 0.5).
        max_faces: faces returned per frame.
    """

    def __init__(self, bundle: str | Path, *, min_presence: float = 0.5, max_faces: int = 2) -> None:
        bundle = Path(bundle)
        if not bundle.is_file():
            raise FaceModelError(f"face landmark bundle not found: {bundle} (see annotate.face_landmarks.ensure_landmarker_bundle)")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(bundle)), running_mode=vision.RunningMode.IMAGE,
            num_faces=max_faces, min_face_detection_confidence=0.5, min_face_presence_confidence=min_presence)
        self._task = vision.FaceLandmarker.create_from_options(options)

    def detect(self, frame: np.ndarray) -> list[FaceMesh]:
        import mediapipe as mp

        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        result = self._task.detect(image)
        return [FaceMesh(np.array([[p.x, p.y, p.z] for p in face], np.float32)) for face in result.face_landmarks]


def confirmed(box: tuple[float, float, float, float], meshes: list[FaceMesh]) -> bool:
    """Whether a detector box holds the centre of some face mesh (the mesh found a face there)."""
    x0, y0, x1, y1 = box
    for mesh in meshes:
        mx0, my0, mx1, my1 = mesh.box
        cx, cy = (mx0 + mx1) / 2, (my0 + my1) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            return True
    return False
