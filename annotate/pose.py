"""Per-frame keypoints of a clip (`dataset.pose` layout) from one of two backends.

    reader     the synthetic puppets' pixel reader (`dataset.synth.actions.read_poses`): head
               centre, ears (the ear cups), neck, shoulders and both hands (the gloves), exact up
               to a pixel; the mouth centre placed from the read head by the rig's geometry (the
               drawn face itself is not read, so no eyes and no lip opening). Used for synthetic
               corpora, so the benchmark has exact poses.
    mediapipe  BlazeFace, the face filter's detector (`annotate.face_detector`), on every frame:
               its six keypoints (eyes, nose tip, mouth centre, ears) of the face nearest the
               annotation's face box, with the detection score as confidence; no lips, no body.
               Why not more: the face mesh built from the mediapipe 0.10.21 wheel returns points
               that are not in the canonical mesh order under the Tasks graph (only its box is
               usable, which is what the face filter uses), and the wheel's body and hand models'
               legacy detectors do not run under the Tasks API we install (README).

`PoseEstimator(backend)(frames, face_box) -> (F, K, 3)`; `dataset.pose.motion_intensity` turns it
into the annotation's `motion` figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataset.pose import empty_pose

# BlazeFace keypoint order -> our keypoint slots (right eye, left eye, nose tip, mouth centre, right ear, left ear).
BLAZEFACE_SLOTS = (1, 2, 0, 3, 4, 5)
METHODS = {"reader": "puppet-pixel-reader", "mediapipe": "mediapipe-blazeface-keypoints"}


def reader_pose(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB frames of a synthetic clip -> (F, K, 3) keypoints (confidence 1 where read)."""
    from dataset.synth import rig
    from dataset.synth.actions import FEATURES, read_poses, working_size
    from dataset.synth.avatar import MOUTH_OFFSET

    frames = np.asarray(frames)
    poses = read_poses(frames)  # (F, features) in pixels of the working resolution
    w, h = working_size(frames.shape[2], frames.shape[1])
    col = {name: i for i, name in enumerate(FEATURES)}
    out = empty_pose(len(frames))

    def put(slot: int, x: np.ndarray, y: np.ndarray) -> None:
        ok = np.isfinite(x) & np.isfinite(y) & (poses[:, col["found"]] > 0)
        out[ok, slot, 0], out[ok, slot, 1], out[ok, slot, 2] = x[ok] / w, y[ok] / h, 1.0

    cx, cy, scale = poses[:, col["cx"]], poses[:, col["cy"]], poses[:, col["scale"]]
    hx, hy, angle = poses[:, col["hx"]], poses[:, col["hy"]], np.radians(poses[:, col["angle"]])
    put(0, hx, hy)  # the head centre: the ear cups' midpoint
    half = rig.CUP_OFFSET[0] * scale  # the cups sit this far either side of it, along the tilt
    put(4, hx - half * np.cos(angle), hy - half * np.sin(angle))  # right ear cup (image left)
    put(5, hx + half * np.cos(angle), hy + half * np.sin(angle))
    # the mouth: its offset from the head centre (the cups' midpoint sits CUP_OFFSET[1] below it), tilted
    mx, my = MOUTH_OFFSET[0] * scale, (MOUTH_OFFSET[1] - rig.CUP_OFFSET[1]) * scale
    put(3, hx + mx * np.cos(angle) - my * np.sin(angle), hy + mx * np.sin(angle) + my * np.cos(angle))
    put(8, cx, cy)  # neck base
    sx, sy = rig.SHOULDER
    put(9, cx + sx * scale, cy + sy * scale)  # right shoulder (image left)
    put(10, cx - sx * scale, cy + sy * scale)
    put(13, poses[:, col["rhx"]], poses[:, col["rhy"]])  # right glove
    put(14, poses[:, col["lhx"]], poses[:, col["lhy"]])
    return out


class PoseEstimator:
    """Keypoints of a clip's frames with one backend (models loaded once, on first use).

    Args:
        backend: "reader" or "mediapipe".
        model_path: BlazeFace model for mediapipe (None = the cached one, `face.model_path`).
    """

    def __init__(self, backend: str, model_path: str | Path | None = None) -> None:
        if backend not in METHODS:
            raise ValueError(f"pose backend must be one of {sorted(METHODS)}, got {backend!r}")
        self.backend, self.method = backend, METHODS[backend]
        self._model_path = model_path
        self._detector = None

    def __call__(self, frames: np.ndarray, face_box: list[float] | None = None) -> np.ndarray:
        if self.backend == "reader":
            return reader_pose(frames)
        return self._mediapipe(frames, face_box)

    def _mediapipe(self, frames: np.ndarray, face_box: list[float] | None) -> np.ndarray:
        from annotate.face_detector import FaceDetector, ensure_face_model

        if self._detector is None:
            self._detector = FaceDetector(ensure_face_model(self._model_path))
        out = empty_pose(len(frames))
        target = ((face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2) if face_box else (0.5, 0.5)
        for t, frame in enumerate(frames):
            faces = [f for f in self._detector.detect(np.asarray(frame)) if len(f.keypoints) == len(BLAZEFACE_SLOTS)]
            if not faces:
                continue
            # the annotated speaker: the detection whose box centre is nearest the face box centre
            face = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - target[0], (f.box[1] + f.box[3]) / 2 - target[1]))
            for slot, (x, y) in zip(BLAZEFACE_SLOTS, face.keypoints):
                out[t, slot] = (x, y, face.score)
        return out

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
