"""Read the puppet's actions back from pixels: `detect_actions(frames) -> per-frame labels`.

The reader knows how the puppet is drawn (`rig.py`): a blue torso whose bounding box gives the
position and the unit W (shoulder width), a green right glove, a magenta left glove, and yellow /
cyan ear cups that move with the head. Colours are matched in HSV with hue and saturation, which
survive resizing, H.264 compression and fades (those scale brightness only), and positions are
measured in W units relative to the neck base, so the frame size does not matter.

Per frame it measures hand and head positions; then
- arm actions: maximal runs of frames where an arm is away from rest (split where an arm passes
  close to rest between two arm phases) are labelled by the majority of the frames in the run
  that are in an unambiguous zone (hand above the head, hand out beside the head, hand in front
  of the chest);
- otherwise the head: a tilt angle, or an oscillation of the head position (nod: vertical, shake:
  horizontal), detected from displacement and velocity together so that zero crossings count;
- frames without a puppet are `none`; with two puppets the leftmost of the largest is read.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import cv2
import numpy as np

from dataset.synth import rig

LABELS = tuple(rig.ACTIONS) + (rig.NO_AVATAR,)
_WORK_HEIGHT = 180  # frames are read at this height at most: fast (720/4, 540/3, 360/2) and enough
_HUE_TOL = 9  # OpenCV hue units (2 degrees each)
_CUP_HUE_TOL = 6  # ear cups sit next to the hair: match their hues tightly
_MIN_SAT = 140
_MIN_VAL = 22  # low: a fade darkens the puppet but keeps its hues
_MIN_TORSO_FRACTION = 0.01  # of the frame area
_REST_TOL = 0.09  # W units: an arm this close to its rest pose is at rest
_REST_TOL_PX = 2.6  # ... or this many pixels: in 64 px H.264 clips a resting glove jitters by ~2 px
_SPLIT_TOL = 0.6  # W units: an arm passing this close to rest between two phases ends a run
_HEAD_MOTION_MIN = 0.45  # quadrature magnitude (1.0 = the drawn amplitude) for nod / shake
_TILT_MIN_DEG = 4.5
# Pixel floors for tiny clips (64 px): ear-cup centroids jitter by about a pixel there, which is a
# tilt of several degrees and the whole amplitude of a nod; motion below these is not read as one.
_TILT_MIN_PX = 3.0  # vertical offset between the ear cups
_HEAD_NOISE_PX = 2.5  # head displacement

# Feature columns of `read_poses` (positions in pixels of the working resolution).
FEATURES = ("found", "scale", "cx", "cy", "rhx", "rhy", "lhx", "lhy", "hx", "hy", "angle")


def _hue(rgb: tuple[int, int, int]) -> int:
    return int(cv2.cvtColor(np.uint8([[rgb]]), cv2.COLOR_RGB2HSV)[0, 0, 0])


_COLOURS = {name: _hue(rgb) for name, rgb in (
    ("shirt", rig.SHIRT_RGB), ("rglove", rig.RIGHT_GLOVE_RGB), ("lglove", rig.LEFT_GLOVE_RGB),
    ("rcup", rig.RIGHT_CUP_RGB), ("lcup", rig.LEFT_CUP_RGB))}


def _mask(hsv: np.ndarray, hue: int, tol: int = _HUE_TOL) -> np.ndarray:
    lo, hi = hue - tol, hue + tol
    m = cv2.inRange(hsv, (max(lo, 0), _MIN_SAT, _MIN_VAL), (min(hi, 179), 255, 255))
    if lo < 0:  # hue wraps around at 180
        m |= cv2.inRange(hsv, (180 + lo, _MIN_SAT, _MIN_VAL), (179, 255, 255))
    if hi > 179:
        m |= cv2.inRange(hsv, (0, _MIN_SAT, _MIN_VAL), (hi - 180, 255, 255))
    return m


def _blob_near(mask: np.ndarray, target: tuple[float, float], min_area: float) -> tuple[float, float] | None:
    """Centroid of the blob of `mask` nearest to `target` (pixels), ignoring specks."""
    n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area) + 1
    if keep.size == 0:
        return None
    d = np.hypot(centroids[keep, 0] - target[0], centroids[keep, 1] - target[1])
    best = keep[int(np.argmin(d))]
    return float(centroids[best, 0]), float(centroids[best, 1])


def _fill(hsv: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Shirt or glove pixels inside each component's box (`stats` rows of connectedComponentsWithStats).

    A hand in front of the chest (pointing) notches the shirt, and in small H.264 clips the glove's
    blurred rim notches it further: for the shape test a glove counts as torso. (The box itself,
    which gives position and scale, stays the shirt's own.)
    """
    cover = _mask(hsv, _COLOURS["shirt"]) | _mask(hsv, _COLOURS["rglove"]) | _mask(hsv, _COLOURS["lglove"])
    total = cv2.integral((cover > 0).astype(np.uint8))  # (h + 1, w + 1) summed-area table
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
    return (total[y1, x1] - total[y0, x1] - total[y1, x0] + total[y0, x0]).astype(np.float64)


def _find_torso(hsv: np.ndarray) -> tuple[float, float, float] | None:
    """(neck x, neck y, shoulder width) in pixels of the puppet to read, or None."""
    h, w = hsv.shape[:2]
    n, _, stats, _ = cv2.connectedComponentsWithStats(_mask(hsv, _COLOURS["shirt"]), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    # A torso is a filled, upright block below the head (not, say, blue sky): check its shape.
    boxes = stats[1:, cv2.CC_STAT_WIDTH].astype(np.float64) * stats[1:, cv2.CC_STAT_HEIGHT]
    torso_like = ((areas >= _MIN_TORSO_FRACTION * h * w) & (_fill(hsv, stats[1:]) >= 0.75 * boxes)
                  & (stats[1:, cv2.CC_STAT_HEIGHT] >= 0.6 * stats[1:, cv2.CC_STAT_WIDTH])
                  & (stats[1:, cv2.CC_STAT_TOP] >= 0.5 * stats[1:, cv2.CC_STAT_WIDTH]))
    areas = np.where(torso_like, areas, 0.0)
    if n <= 1 or areas.max() <= 0:
        return None
    # Of the large torsos (two-avatar shots have two of equal size), read the leftmost: stable.
    big = np.flatnonzero(areas >= 0.6 * areas.max()) + 1
    k = big[int(np.argmin(stats[big, cv2.CC_STAT_LEFT]))]
    x0, y0, bw = stats[k, cv2.CC_STAT_LEFT], stats[k, cv2.CC_STAT_TOP], stats[k, cv2.CC_STAT_WIDTH]
    # The torso is exactly one shoulder width wide and its top edge is the shoulder line.
    return x0 + bw / 2.0, float(y0), float(bw)


def working_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the working resolution `read_poses` measures a frame of this size in."""
    if height > _WORK_HEIGHT:
        return max(1, round(width * _WORK_HEIGHT / height)), _WORK_HEIGHT
    return width, height


def _working_hsv(frame: np.ndarray) -> np.ndarray:
    """The frame at the working resolution, in HSV (what every measurement reads)."""
    h, w = frame.shape[:2]
    if (w, h) != working_size(w, h):
        frame = cv2.resize(frame, working_size(w, h), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)


def _frame_pose(frame: np.ndarray) -> np.ndarray:
    out = np.full(len(FEATURES), np.nan)
    out[0] = 0.0
    hsv = _working_hsv(frame)
    h, w = hsv.shape[:2]
    torso = _find_torso(hsv)
    if torso is None:
        return out
    cx, cy, scale = torso
    # Everything else lies within reach of this torso: look only there (speed, and no neighbour).
    rx0, rx1 = max(0, int(cx - 1.7 * scale)), min(w, int(cx + 1.7 * scale) + 1)
    ry0, ry1 = max(0, int(cy - 1.7 * scale)), min(h, int(cy + 1.3 * scale) + 1)
    roi = hsv[ry0:ry1, rx0:rx1]

    def find(colour: str, where: tuple[float, float], radius: float, tol: int = _HUE_TOL) -> tuple[float, float]:
        target = (cx + scale * where[0] - rx0, cy + scale * where[1] - ry0)
        blob = _blob_near(_mask(roi, _COLOURS[colour], tol), target, 0.2 * np.pi * (radius * scale) ** 2)
        if blob is None:
            return np.nan, np.nan
        return blob[0] + rx0, blob[1] + ry0

    head_y = rig.HEAD_CENTER[1] + rig.CUP_OFFSET[1]
    rh = find("rglove", rig.SHOULDER, rig.GLOVE_RADIUS)
    lh = find("lglove", (-rig.SHOULDER[0], rig.SHOULDER[1]), rig.GLOVE_RADIUS)
    rc = find("rcup", (-rig.CUP_OFFSET[0], head_y), rig.CUP_RADIUS, _CUP_HUE_TOL)
    lc = find("lcup", (rig.CUP_OFFSET[0], head_y), rig.CUP_RADIUS, _CUP_HUE_TOL)
    angle = np.degrees(np.arctan2(lc[1] - rc[1], lc[0] - rc[0]))
    out[:] = (1.0, scale, cx, cy, *rh, *lh, (rc[0] + lc[0]) / 2, (rc[1] + lc[1]) / 2, angle)
    return out


HEAD_FEATURES = ("found", "scale", "hx", "hy", "angle")  # columns of `read_heads`


def _frame_head(frame: np.ndarray) -> np.ndarray:
    out = np.full(len(HEAD_FEATURES), np.nan)
    out[0] = 0.0
    hsv = _working_hsv(frame)
    cups = []
    for colour in ("rcup", "lcup"):
        n, _, stats, centroids = cv2.connectedComponentsWithStats(_mask(hsv, _COLOURS[colour], _CUP_HUE_TOL), connectivity=8)
        if n <= 1:
            return out
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # the largest blob: one puppet in a close-up
        if stats[k, cv2.CC_STAT_AREA] < 4:
            return out
        cups.append(centroids[k])
    (rx, ry), (lx, ly) = cups
    if lx <= rx:  # the puppet's right cup is on the image left: anything else is not a head
        return out
    scale = float(np.hypot(lx - rx, ly - ry)) / (2.0 * rig.CUP_OFFSET[0])
    out[:] = (1.0, scale, (rx + lx) / 2, (ry + ly) / 2, np.degrees(np.arctan2(ly - ry, lx - rx)))
    return out


def read_heads(frames: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """(T, len(HEAD_FEATURES)) head measurements from the ear cups alone, in pixels of the working
    resolution: for close-ups, where the torso `read_poses` anchors on is out of the frame. `scale`
    is the torso's unit W, from the cups' distance (`rig.CUP_OFFSET`); `found` is 0 unless both cups
    are seen, the right one (image left) left of the other."""
    rows = [_frame_head(np.asarray(frame)) for frame in frames]
    return np.array(rows).reshape(-1, len(HEAD_FEATURES))


def read_poses(frames: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """(T, len(FEATURES)) float64 measurements per frame, in pixels of the working resolution.

    Columns: puppet found (0/1), torso width, neck base x/y, right and left glove x/y, ear-cup
    midpoint x/y, head tilt (degrees). Missing parts are NaN; `found` is 0 without a puppet.
    """
    rows = []
    for frame in frames:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"each frame must be uint8 (H, W, 3) RGB, got {frame.dtype} {frame.shape}")
        rows.append(_frame_pose(frame))
    return np.array(rows).reshape(-1, len(FEATURES))


def _arm_zone(rh: np.ndarray, lh: np.ndarray) -> str | None:
    """The arm action a single frame shows unambiguously, if any."""
    r_up = rh[1] < -0.95
    l_up = lh[1] < -0.95
    if r_up and l_up:
        return "both_hands_up"
    if r_up:
        return "raise_right_hand"
    if l_up:
        return "raise_left_hand"
    if -0.95 <= rh[1] <= -0.3 and rh[0] < -0.9:
        return "wave_right_hand"
    if rh[0] > -0.35 and -0.1 < rh[1] < 0.6:
        return "point_forward"
    return None


def _label_arm_runs(labels: list[str], rh: np.ndarray, lh: np.ndarray, found: np.ndarray, rest_tol: np.ndarray) -> None:
    r_rest = np.array(rig.REST[1])
    l_rest = np.array((-rig.REST[1][0], rig.REST[1][1]))
    dist = np.fmax(np.hypot(*(rh - r_rest).T), np.hypot(*(lh - l_rest).T))  # NaN only if both are
    dist = np.where(found & np.isfinite(dist), dist, 0.0)
    active = dist > rest_tol
    t, n = 0, len(labels)
    while t < n:
        if not active[t]:
            t += 1
            continue
        end = t
        while end + 1 < n and active[end + 1]:
            end += 1
        # Split where an arm dips towards rest between two phases (a local minimum near rest).
        starts = [t] + [k for k in range(t + 1, end) if dist[k] < _SPLIT_TOL and dist[k] <= dist[k - 1]
                        and dist[k] < dist[k + 1]] + [end + 1]
        for a, b in zip(starts[:-1], starts[1:]):
            votes: dict[str, int] = {}
            for k in range(a, b):
                zone = _arm_zone(rh[k], lh[k])
                if zone is not None:
                    votes[zone] = votes.get(zone, 0) + 1
            if votes:
                labels[a:b] = [max(votes, key=votes.__getitem__)] * (b - a)
        t = end + 1


def _setups(poses: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) stretches of frames with the puppet found at a steady position and size."""
    found = poses[:, 0] > 0.5
    scale, cx, cy = poses[:, 1], poses[:, 2], poses[:, 3]
    out, start = [], None
    for t in range(len(poses)):
        if not found[t]:
            if start is not None:
                out.append((start, t))
                start = None
            continue
        # Between frames of one shot the torso box moves by a pixel at most (sway, rounding).
        jump = max(2.0, 0.04 * scale[t - 1]) if start is not None else 0.0
        if start is not None and (abs(scale[t] - scale[t - 1]) > jump
                                  or np.hypot(cx[t] - cx[t - 1], cy[t] - cy[t - 1]) > jump):
            out.append((start, t))
            start = None
        if start is None:
            start = t
    if start is not None:
        out.append((start, len(poses)))
    return out


def _running_median(x: np.ndarray, half: int) -> np.ndarray:
    """Median of each column over [t - half, t + half], ignoring NaN (T, C) -> (T, C)."""
    padded = np.pad(x, ((half, half), (0, 0)), constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # (T, C, 2*half+1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window yields NaN, handled by the caller
        return np.nanmedian(windows, axis=-1)


def classify_poses(poses: np.ndarray, fps: float = 25.0) -> list[str]:
    """Per-frame labels (`LABELS`) from `read_poses` output; `fps` scales head velocities."""
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    found = poses[:, 0] > 0.5
    labels = ["idle" if f else rig.NO_AVATAR for f in found]
    if not found.any():
        return labels
    rh, lh = np.full((len(poses), 2), np.nan), np.full((len(poses), 2), np.nan)
    head, angle = np.zeros((len(poses), 2)), poses[:, 10]
    # 1. Rig units per camera set-up: one anchor and scale per stretch, averaged over its frames,
    # so that the whole-pixel steps of a single frame's bounding box do not add noise. The head's
    # idle position is its running median over about 2 s (a nod or shake oscillates around it).
    half = max(2, int(round(fps)))
    for a, b in _setups(poses):
        scale = float(np.mean(poses[a:b, 1]))
        anchor = np.mean(poses[a:b, 2:4], axis=0)
        rh[a:b] = (poses[a:b, 4:6] - anchor) / scale
        lh[a:b] = (poses[a:b, 6:8] - anchor) / scale
        block = poses[a:b, 8:10]
        if np.isfinite(block).all(axis=1).any():
            head[a:b] = np.where(np.isfinite(block), (block - _running_median(block, half)) / scale, 0.0)
    vel = np.zeros_like(head)
    vel[1:-1] = (head[2:] - head[:-2]) * (fps / 2.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        noise = _HEAD_NOISE_PX / poses[:, 1]  # W units; NaN without a puppet
        cup_offset_px = np.abs(np.sin(np.radians(angle))) * 2 * rig.CUP_OFFSET[0] * poses[:, 1]
    mag = []
    for axis, amp, hz in ((0, rig.SHAKE_AMPLITUDE, rig.SHAKE_HZ), (1, rig.NOD_AMPLITUDE, rig.NOD_HZ)):
        amp = np.fmax(amp, noise)  # a pixel of jitter is not a nod
        mag.append(np.hypot(head[:, axis] / amp, vel[:, axis] / (amp * 2 * np.pi * hz)))
    for t in np.flatnonzero(found):
        if np.isfinite(angle[t]) and abs(angle[t]) > _TILT_MIN_DEG and cup_offset_px[t] >= _TILT_MIN_PX:
            labels[t] = "tilt_head"
        elif mag[1][t] > _HEAD_MOTION_MIN and mag[1][t] >= mag[0][t]:
            labels[t] = "nod"
        elif mag[0][t] > _HEAD_MOTION_MIN:
            labels[t] = "shake_head"
    # 2. Arms override the head: the puppet never moves its head while acting with an arm.
    with np.errstate(invalid="ignore", divide="ignore"):
        rest_tol = np.fmax(_REST_TOL, _REST_TOL_PX / poses[:, 1])  # NaN scale (no puppet) -> _REST_TOL
    _label_arm_runs(labels, rh, lh, found, rest_tol)
    return labels


def detect_actions(frames: np.ndarray | Iterable[np.ndarray], fps: float = 25.0) -> list[str]:
    """Per-frame action labels of a video of the synthetic puppet.

    Args:
        frames: uint8 RGB frames, an array (T, H, W, 3) or an iterable of (H, W, 3) arrays; any
            size (resized or re-encoded copies work).
        fps: frame rate of the frames (the average for a variable-rate video); used to judge head
            motion speed, tolerant to about ±20%.

    Returns:
        T labels from `LABELS`: an action of `rig.ACTIONS` ("idle" included) or "none" where no
        puppet is visible.
    """
    frames_arr = frames if isinstance(frames, np.ndarray) else None
    if frames_arr is not None and (frames_arr.ndim != 4 or frames_arr.shape[-1] != 3 or frames_arr.dtype != np.uint8):
        raise ValueError(f"frames must be uint8 (T, H, W, 3) RGB, got {frames_arr.dtype} {frames_arr.shape}")
    return classify_poses(read_poses(frames), fps)
