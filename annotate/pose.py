"""Per-frame keypoints of a clip (`dataset.pose` layout) from one of two backends.

    reader     the synthetic puppets' pixel reader (`dataset.synth.actions.read_poses`): head
               centre, ears (the ear cups), neck, shoulders and both hands (the gloves), exact up
               to a pixel; the mouth centre placed from the read head by the rig's geometry (the
               drawn face itself is not read, so no eyes and no lip opening). Used for synthetic
               corpora, so the benchmark has exact poses.
    mediapipe  real models on every frame: BlazeFace, the face filter's detector
               (`annotate.face_detector`), for the six face keypoints (eyes, nose tip, mouth
               centre, ears) of the face nearest the annotation's face box, with the detection
               score as confidence; and BlazePose (`annotate.body_landmarks`, tracking one person
               through the clip) for the body: neck (the shoulders' midpoint), shoulders, elbows
               and wrists, with BlazePose's visibility as confidence, in frames where that
               person's nose lies in the annotation's face box (grown to twice its size), so a
               second person is never taken for the speaker; and the face mesh
               (`annotate.face_landmarks`, tracked through the clip) for the lips: upper_lip and
               lower_lip are its inner-lip midpoints (their gap is the mouth opening), in frames
               where the mesh lies on the speaker's BlazeFace detection (its centre inside that
               box), with the detection score as confidence; and MediaPipe hands
               (`annotate.hand_landmarks`, tracked through the clip) for the 21 landmarks of each
               hand, in frames where a hand's wrist lies near one of the speaker's BlazePose
               wrists (that wrist decides which hand it is; a hand near neither, e.g. another
               person's, is left out), with confidence 1 (the landmarker's presence threshold,
               0.5, passed; the Tasks API does not return the score).

`PoseEstimator(backend)(frames, face_box) -> (F, K, 3)`; `dataset.pose.motion_intensity` turns it
into the annotation's `motion` figures.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from dataset.pose import LEFT_HAND, RIGHT_HAND, empty_pose

# BlazeFace keypoint order -> our keypoint slots (right eye, left eye, nose tip, mouth centre, right ear, left ear).
BLAZEFACE_SLOTS = (1, 2, 0, 3, 4, 5)
# BlazePose landmark -> our slot: right/left shoulder, elbow, wrist (the person's right is BlazePose's 12, 14, 16)
BLAZEPOSE_SLOTS = {12: 9, 11: 10, 14: 11, 13: 12, 16: 13, 15: 14}
NECK_SLOT = 8
SPEAKER_BOX_SCALE = 2.0  # BlazePose's person counts when its nose is inside the face box grown this much
UPPER_LIP_SLOT, LOWER_LIP_SLOT = 6, 7
BLAZEPOSE_WRISTS = {"right": 16, "left": 15}
HAND_SLOTS = {"right": RIGHT_HAND[0], "left": LEFT_HAND[0]}  # first slot of each hand's 21
HAND_REACH = 1.0  # a hand belongs to a body wrist within this many times the hand's own size (wrist to middle knuckle)
METHODS = {"reader": "puppet-pixel-reader", "mediapipe": "mediapipe-blazeface-blazepose-facemesh-hands"}


def reader_pose(frames: np.ndarray) -> np.ndarray:
    """(F, H, W, 3) uint8 RGB frames of a synthetic clip -> (F, K, 3) keypoints (confidence 1 where read).

    Frames whose torso is out of view (face close-ups, `clip.crop_scale` about 1.8) still get the
    head, ears and mouth, read from the ear cups alone (`read_heads`)."""
    from dataset.synth import rig
    from dataset.synth.actions import FEATURES, HEAD_FEATURES, read_heads, read_poses, working_size
    from dataset.synth.avatar import MOUTH_OFFSET

    frames = np.asarray(frames)
    poses = read_poses(frames)  # (F, features) in pixels of the working resolution
    w, h = working_size(frames.shape[2], frames.shape[1])
    col = {name: i for i, name in enumerate(FEATURES)}
    out = empty_pose(len(frames))
    found = poses[:, col["found"]] > 0
    head = {name: poses[:, col[name]].copy() for name in ("hx", "hy", "angle", "scale")}
    head_found = found.copy()
    if not found.all():  # close-ups: the head from its ear cups where no torso was read
        heads = read_heads(frames[~found])
        hcol = {name: i for i, name in enumerate(HEAD_FEATURES)}
        for name in head:
            head[name][~found] = heads[:, hcol[name]]
        head_found[~found] = heads[:, hcol["found"]] > 0

    def put(slot: int, x: np.ndarray, y: np.ndarray, seen: np.ndarray) -> None:
        ok = np.isfinite(x) & np.isfinite(y) & seen
        out[ok, slot, 0], out[ok, slot, 1], out[ok, slot, 2] = x[ok] / w, y[ok] / h, 1.0

    cx, cy, scale = poses[:, col["cx"]], poses[:, col["cy"]], poses[:, col["scale"]]
    hx, hy, angle, hscale = head["hx"], head["hy"], np.radians(head["angle"]), head["scale"]
    put(0, hx, hy, head_found)  # the head centre: the ear cups' midpoint
    half = rig.CUP_OFFSET[0] * hscale  # the cups sit this far either side of it, along the tilt
    put(4, hx - half * np.cos(angle), hy - half * np.sin(angle), head_found)  # right ear cup (image left)
    put(5, hx + half * np.cos(angle), hy + half * np.sin(angle), head_found)
    # the mouth: its offset from the head centre (the cups' midpoint sits CUP_OFFSET[1] below it), tilted
    mx, my = MOUTH_OFFSET[0] * hscale, (MOUTH_OFFSET[1] - rig.CUP_OFFSET[1]) * hscale
    put(3, hx + mx * np.cos(angle) - my * np.sin(angle), hy + mx * np.sin(angle) + my * np.cos(angle), head_found)
    put(8, cx, cy, found)  # neck base
    sx, sy = rig.SHOULDER
    put(9, cx + sx * scale, cy + sy * scale, found)  # right shoulder (image left)
    put(10, cx - sx * scale, cy + sy * scale, found)
    put(13, poses[:, col["rhx"]], poses[:, col["rhy"]], found)  # right glove
    put(14, poses[:, col["lhx"]], poses[:, col["lhy"]], found)
    return out


def speaker_hands(hands: list, body: np.ndarray) -> dict:
    """{"right" | "left": Hand} of the speaker: each hand (`annotate.hand_landmarks.Hand`) goes to the
    BlazePose wrist (`body` (33, 3)) nearest its own wrist when that wrist is within HAND_REACH times
    the hand's size (wrist to middle knuckle); a hand near neither wrist is not the speaker's. When
    two hands claim one wrist, the nearer keeps it."""
    claims = []
    for hand in hands:
        size = float(np.hypot(*(hand.points[9] - hand.points[0])))
        for side, landmark in BLAZEPOSE_WRISTS.items():
            gap = float(np.hypot(*(hand.points[0] - body[landmark, :2])))
            if gap <= HAND_REACH * max(size, 1e-6):
                claims.append((gap, side, hand))
    out = {}
    for gap, side, hand in sorted(claims, key=lambda c: c[0]):
        if side not in out and all(h is not hand for h in out.values()):
            out[side] = hand
    return out


class PoseEstimator:
    """Keypoints of a clip's frames with one backend (models loaded once, on first use).

    Args:
        backend: "reader" or "mediapipe".
        model_path: BlazeFace model for mediapipe (None = the cached one, `face.model_path`).
        pose_bundle: BlazePose task bundle for mediapipe (None = the cached one, built once from the
            mediapipe 0.10.21 wheel, `annotate.body_landmarks.ensure_pose_bundle`).
        mesh_bundle: face landmarker task bundle for mediapipe's lips (None = the cached one, the face
            filter's `face.landmark_bundle`, `annotate.face_landmarks.ensure_landmarker_bundle`).
        hand_bundle: hand landmarker task bundle for mediapipe's hands (None = the cached one,
            `annotate.hand_landmarks.ensure_hand_bundle`).
        hands: measure the hands (mediapipe; off: their keypoints stay unmeasured).
    """

    def __init__(self, backend: str, model_path: str | Path | None = None, pose_bundle: str | Path | None = None,
                 mesh_bundle: str | Path | None = None, hand_bundle: str | Path | None = None, hands: bool = True) -> None:
        if backend not in METHODS:
            raise ValueError(f"pose backend must be one of {sorted(METHODS)}, got {backend!r}")
        self.backend, self.method = backend, METHODS[backend]
        if backend == "mediapipe" and not hands:
            self.method = self.method.removesuffix("-hands")
        self._model_path, self._pose_bundle, self._mesh_bundle = model_path, pose_bundle, mesh_bundle
        self._hand_bundle, self._hands = hand_bundle, hands
        self._detector = None

    def __call__(self, frames: np.ndarray, face_box: list[float] | None = None, fps: float = 25.0) -> np.ndarray:
        if self.backend == "reader":
            return reader_pose(frames)
        return self._mediapipe(frames, face_box, fps)

    def _mediapipe(self, frames: np.ndarray, face_box: list[float] | None, fps: float) -> np.ndarray:
        from annotate.body_landmarks import BodyLandmarker, ensure_pose_bundle
        from annotate.face_detector import FaceDetector, ensure_face_model
        from annotate.face_landmarks import FaceLandmarker, confirmed, ensure_landmarker_bundle
        from annotate.hand_landmarks import HandLandmarker, ensure_hand_bundle

        if self._detector is None:
            self._detector = FaceDetector(ensure_face_model(self._model_path))
        if self._pose_bundle is None or not Path(self._pose_bundle).is_file():
            self._pose_bundle = ensure_pose_bundle(self._pose_bundle)
        if self._mesh_bundle is None or not Path(self._mesh_bundle).is_file():
            self._mesh_bundle = ensure_landmarker_bundle(self._mesh_bundle)
        if self._hands and (self._hand_bundle is None or not Path(self._hand_bundle).is_file()):
            self._hand_bundle = ensure_hand_bundle(self._hand_bundle)
        out = empty_pose(len(frames))
        target = ((face_box[0] + face_box[2]) / 2, (face_box[1] + face_box[3]) / 2) if face_box else (0.5, 0.5)
        half = ((face_box[2] - face_box[0]) / 2 * SPEAKER_BOX_SCALE, (face_box[3] - face_box[1]) / 2 * SPEAKER_BOX_SCALE) \
            if face_box else (0.5, 0.5)
        # one clip: body, face and hands tracked frame to frame (detectors rerun only when tracking is lost)
        with BodyLandmarker(self._pose_bundle, fps=fps) as tracker, \
                FaceLandmarker(self._mesh_bundle, max_faces=1, fps=fps) as mesher, \
                (HandLandmarker(self._hand_bundle, fps=fps) if self._hands else nullcontext()) as hander:
            for t, frame in enumerate(frames):
                frame = np.asarray(frame)
                face = self._face_keypoints(frame, target, out[t])
                meshes = mesher.detect(frame)
                if face is not None and meshes and confirmed(face.box, meshes):
                    (ux, uy), (lx, ly) = meshes[0].inner_lips
                    out[t, UPPER_LIP_SLOT], out[t, LOWER_LIP_SLOT] = (ux, uy, face.score), (lx, ly, face.score)
                body = tracker.detect(frame)
                hands = hander.detect(frame) if hander is not None else []  # every frame, in order (video mode)
                if body is not None and abs(body[0, 0] - target[0]) <= half[0] and abs(body[0, 1] - target[1]) <= half[1]:
                    for landmark, slot in BLAZEPOSE_SLOTS.items():
                        out[t, slot] = body[landmark]
                    right, left = body[12], body[11]
                    out[t, NECK_SLOT] = ((right[0] + left[0]) / 2, (right[1] + left[1]) / 2, min(right[2], left[2]))
                    for side, hand in speaker_hands(hands, body).items():
                        slots = slice(HAND_SLOTS[side], HAND_SLOTS[side] + len(hand.points))
                        out[t, slots, :2], out[t, slots, 2] = hand.points, 1.0
        # BlazePose extrapolates landmarks beyond the frame edges: those count as unmeasured (as
        # `dataset.pose.crop_pose` treats keypoints cropped away), with the layout's NaN positions
        inside = (out[..., 0] >= 0) & (out[..., 0] <= 1) & (out[..., 1] >= 0) & (out[..., 1] <= 1)
        out[..., 2] = np.where(inside, np.clip(out[..., 2], 0.0, 1.0), 0.0)
        out[out[..., 2] <= 0, :2] = np.nan
        return out

    def _face_keypoints(self, frame: np.ndarray, target: tuple[float, float], row: np.ndarray):
        """BlazeFace's six keypoints of the face nearest `target` into `row` (K, 3), in place; that
        detection (None when there is none)."""
        faces = [f for f in self._detector.detect(frame) if len(f.keypoints) == len(BLAZEFACE_SLOTS)]
        if not faces:
            return None
        # the annotated speaker: the detection whose box centre is nearest the face box centre
        face = min(faces, key=lambda f: np.hypot((f.box[0] + f.box[2]) / 2 - target[0], (f.box[1] + f.box[3]) / 2 - target[1]))
        for slot, (x, y) in zip(BLAZEFACE_SLOTS, face.keypoints):
            row[slot] = (x, y, face.score)
        return face

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None
