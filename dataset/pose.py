"""Per-frame keypoints of a clip (the `pose.npy` shard member) and the motion intensity measured from them.

Layout of `pose.npy`: a float16 array (num_frames, NUM_KEYPOINTS, 3) at the clip's 25 fps, row
t = video frame t; per keypoint `x, y, confidence`: x and y normalised to the clip's width and
height (0..1, top-left origin), confidence 0..1 (0 = not measured: x and y are NaN then). The
keypoints, in this order ("right" = the person's right, the image left, as in COCO / MediaPipe):

    face  0 nose (the puppet reader: head centre)  1 right_eye  2 left_eye  3 mouth (centre)
          4 right_ear  5 left_ear  6 upper_lip  7 lower_lip (inner-lip midpoints)
    body  8 neck (middle of the shoulder line)  9 right_shoulder  10 left_shoulder
          11 right_elbow  12 left_elbow  13 right_wrist  14 left_wrist
    hands 15..35 the right hand, 36..56 the left hand, each in MediaPipe's order: wrist, then the
          thumb (cmc, mcp, ip, tip), index, middle, ring and little finger (mcp, pip, dip, tip)

Layout v2 (57 keypoints) appends the hands to v1 (15 keypoints): a v1 file reads as v2 with the
hands unmeasured (`check_pose` pads it), and a branch trained on v1 reads the first 15
(`model.pose`), so old corpora and checkpoints keep working. Clips without a measured hand are
still written as v1 (`encode_pose`; the synthetic reader measures wrists, not hands).

A backend fills what it measures and leaves the rest at confidence 0 (`annotate.pose`).

Motion intensity (FantasyTalking's expression and body-motion intensity), per clip:

    face_speed  mean over frames of the mean speed of the face keypoints, in clip heights per
                second (the clip is framed on the face, so this is relative to the face size)
    body_speed  the same over the body keypoints
    face / body intensity: the speed mapped linearly from 0 to FACE_FULL / BODY_FULL and clipped
                to [0, 1] (an absolute scale: comparable across clips and corpora; the corpus
                levels in the manifest are quantiles on top, see `motion_levels`)

Written by hand (numpy): a fixed array layout and two averages are the contract between the
corpus pipeline, the trainer and the sampler; no library defines them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from dataset.schema import VIDEO_FPS

HAND_POINTS = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)  # MediaPipe's hand landmark order
KEYPOINTS = (
    "nose", "right_eye", "left_eye", "mouth", "right_ear", "left_ear", "upper_lip", "lower_lip",
    "neck", "right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_wrist", "left_wrist",
    *(f"right_hand_{p}" for p in HAND_POINTS), *(f"left_hand_{p}" for p in HAND_POINTS),
)
NUM_KEYPOINTS = len(KEYPOINTS)
V1_KEYPOINTS = 15  # layout v1: face and body, no hands
FACE = tuple(range(0, 8))
BODY = tuple(range(8, 15))
RIGHT_HAND = tuple(range(15, 36))
LEFT_HAND = tuple(range(36, 57))
MIN_CONFIDENCE = 0.5  # a keypoint counts in a frame pair when both frames measured it at least this well
FACE_FULL = 0.5  # clip heights per second: face intensity 1 (a vigorous nod or head shake)
BODY_FULL = 1.5  # clip heights per second: body intensity 1 (a fast wave)
NUM_LEVELS = 5  # corpus quantile levels 0..4 of each intensity in the manifest
# What a trained checkpoint's motion inputs mean (its conditioning.json records it): change it when
# the definition of the intensities changes.
MOTION_DEFINITION = f"dataset.pose v1: window (face, body) keypoint speed / ({FACE_FULL}, {BODY_FULL}) clip heights per s"

# What a trained pose branch reads (its conditioning.json records it): the layout above, normalised
# to the frame the model sees (after the training crop).
POSE_DEFINITION = (f"dataset.pose v2: (frames, {NUM_KEYPOINTS}, 3) x, y normalised to the generated frame, confidence; "
                   f"the branch reads the first pose.num_keypoints of its config.json ({V1_KEYPOINTS} = layout v1)")


class PoseError(ValueError):
    """A pose array that does not follow the layout above."""


def empty_pose(num_frames: int) -> np.ndarray:
    """(num_frames, K, 3) float32: nothing measured (NaN positions, confidence 0)."""
    pose = np.full((num_frames, NUM_KEYPOINTS, 3), np.nan, np.float32)
    pose[..., 2] = 0.0
    return pose


def check_pose(pose: np.ndarray, num_frames: int | None = None) -> np.ndarray:
    """The array as float32 after checking its layout; raises PoseError naming the problem."""
    pose = np.asarray(pose)
    if pose.ndim != 3 or pose.shape[1:] not in ((NUM_KEYPOINTS, 3), (V1_KEYPOINTS, 3)):
        raise PoseError(f"pose must be (num_frames, {NUM_KEYPOINTS}, 3) (or layout v1's (num_frames, {V1_KEYPOINTS}, 3)), "
                        f"got shape {pose.shape}")
    if not np.issubdtype(pose.dtype, np.floating):
        raise PoseError(f"pose must be a float array, got {pose.dtype}")
    if num_frames is not None and pose.shape[0] != num_frames:
        raise PoseError(f"pose has {pose.shape[0]} frames, the clip has {num_frames}")
    pose = pose.astype(np.float32)
    if pose.shape[1] == V1_KEYPOINTS:  # layout v1: the hands unmeasured
        pose = np.concatenate([pose, empty_pose(len(pose))[:, V1_KEYPOINTS:]], axis=1)
    conf = pose[..., 2]
    if np.isnan(conf).any() or (conf < 0).any() or (conf > 1).any():
        raise PoseError("pose confidences must be in [0, 1]")
    return pose


def encode_pose(pose: np.ndarray) -> bytes:
    """The `pose.npy` member's bytes (float16, no pickle): layout v1 (15 keypoints) when no hand
    keypoint is measured (a quarter of the size; readers pad it), else v2."""
    pose = check_pose(pose)
    if not (pose[:, V1_KEYPOINTS:, 2] > 0).any():
        pose = pose[:, :V1_KEYPOINTS]
    buf = io.BytesIO()
    np.save(buf, pose.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


def decode_pose(data: bytes, num_frames: int | None = None) -> np.ndarray:
    """A `pose.npy` member -> (F, K, 3) float32; PoseError when it is not one."""
    try:
        pose = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)  # .npy only (never npz / pickle)
    except (ValueError, OSError, EOFError) as err:
        raise PoseError(f"pose.npy is not a numpy array file: {err}") from None
    return check_pose(pose, num_frames)


def keypoint_speeds(pose: np.ndarray, which: Sequence[int], fps: float = VIDEO_FPS, aspect: float = 1.0) -> np.ndarray:
    """(F - 1,) mean speed (clip heights per second) of the keypoints `which` measured in both
    frames of each consecutive pair; NaN for pairs with none. `aspect` = clip width / height
    (x is normalised to the width: scaled by it, x and y count in the same unit)."""
    pose = check_pose(pose)
    pts = pose[:, list(which)]  # (F, k, 3)
    ok = (pts[1:, :, 2] >= MIN_CONFIDENCE) & (pts[:-1, :, 2] >= MIN_CONFIDENCE)  # (F-1, k)
    step = np.hypot((pts[1:, :, 0] - pts[:-1, :, 0]) * aspect, pts[1:, :, 1] - pts[:-1, :, 1]) * fps
    step = np.where(ok, step, 0.0)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, step.sum(axis=1) / np.maximum(count, 1), np.nan)


def motion_intensity(pose: np.ndarray, fps: float = VIDEO_FPS, aspect: float = 1.0) -> dict[str, float | None]:
    """The clip's motion figures (the annotation's `motion` object, less `method`); None where
    the backend measured no keypoint of that group in two consecutive frames."""
    out: dict[str, float | None] = {}
    for name, which, full in (("face", FACE, FACE_FULL), ("body", BODY, BODY_FULL)):
        speeds = keypoint_speeds(pose, which, fps, aspect)
        speeds = speeds[np.isfinite(speeds)]
        if speeds.size == 0:
            out[f"{name}_speed"] = out[f"{name}_intensity"] = None
            continue
        speed = float(speeds.mean())
        out[f"{name}_speed"] = round(speed, 6)
        out[f"{name}_intensity"] = round(float(np.clip(speed / full, 0.0, 1.0)), 6)
    return out


def level_edges(values: Sequence[float | None], num_levels: int = NUM_LEVELS) -> np.ndarray | None:
    """Inner quantile edges (num_levels - 1,) of the measured values; None when none is measured."""
    finite = np.array([v for v in values if v is not None and np.isfinite(v)], np.float64)
    if finite.size == 0:
        return None
    return np.quantile(finite, np.linspace(0, 1, num_levels + 1)[1:-1])


def apply_levels(values: Sequence[float | None], edges: np.ndarray | None) -> list[int | None]:
    """Level of each value: how many edges lie at or below it (None stays None)."""
    return [None if edges is None or v is None or not np.isfinite(v) else int(np.searchsorted(edges, v, side="right"))
            for v in values]


def motion_levels(values: Sequence[float | None], num_levels: int = NUM_LEVELS) -> list[int | None]:
    """Corpus levels 0..num_levels-1 of one intensity: the quantile bin of each value among the
    measured values (equal values share a level; None stays None); depends only on the multiset."""
    return apply_levels(values, level_edges(values, num_levels))


def window_motion(pose: np.ndarray, start: int, frames: int, fps: float = VIDEO_FPS, aspect: float = 1.0) -> tuple[float | None, float | None]:
    """(face, body) intensity of frames [start, start + frames) of a clip's pose (a training window)."""
    m = motion_intensity(np.asarray(pose)[start : start + frames], fps, aspect)
    return m["face_intensity"], m["body_intensity"]


def annotation_motion(doc: dict) -> tuple[float | None, float | None] | None:
    """(face, body) intensity of a whole clip from its annotation; None for corpora without `motion`."""
    motion = doc.get("motion")
    return None if not motion else (motion["face_intensity"], motion["body_intensity"])


def crop_pose(pose: np.ndarray, src_height: int, src_width: int, scale: float, top: int, left: int,
              out_height: int, out_width: int) -> np.ndarray:
    """Keypoints of a frame scaled by `scale` and cropped at (top, left) to out_height x out_width,
    renormalised to the crop; keypoints that fall outside it become unmeasured (confidence 0)."""
    pose = check_pose(pose).copy()
    x = (pose[..., 0] * src_width * scale - left) / out_width
    y = (pose[..., 1] * src_height * scale - top) / out_height
    inside = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1) & (pose[..., 2] > 0)  # NaN compares False
    pose[..., 0] = np.where(inside, x, np.nan)
    pose[..., 1] = np.where(inside, y, np.nan)
    pose[..., 2] = np.where(inside, pose[..., 2], 0.0)
    return pose
