"""MediaPipe hands from the mediapipe 0.10.21 wheel (`annotate.hand_landmarks`): the bundle's
normalisation metadata, the canonical landmark order on a drawn hand, tracking through a clip, and
which hand belongs to the speaker (`annotate.pose.speaker_hands`)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from annotate.hand_landmarks import (DETECTOR_NORM, LANDMARK_NORM, NUM_LANDMARKS, Hand, HandLandmarker,
                                     ensure_hand_bundle)
from annotate.pose import speaker_hands
from tests.annotate.test_pose import declared_metadata

SKIN, BACKGROUND = (224, 172, 140), (90, 110, 130)
# fingers of the drawn hand: base offset from the palm centre (x, y), tilt (degrees), length, radius
# (in pixels of a 384 px frame): index, middle, ring, little finger
FINGERS = [(-33, -60, -12, 95, 13), (-5, -68, -2, 105, 13), (22, -64, 8, 98, 12), (46, -52, 20, 78, 11)]
THUMB = ((-60, 20), (-55, -55), 15)


def drawn_hand(size: int = 256) -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """A flat skin-coloured right hand, palm to the camera, fingers up, thumb to the image left, on
    a plain background; and where its wrist and fingertips are drawn (MediaPipe landmark -> x, y px)."""
    import cv2

    img = np.full((size, size, 3), BACKGROUND, np.uint8)
    s, centre = size / 384, np.array([size * 0.5, size * 0.62])
    cv2.ellipse(img, tuple(centre.astype(int)), (int(62 * s), int(72 * s)), 0, 0, 360, SKIN, -1)  # palm
    cv2.rectangle(img, (int(centre[0] - 45 * s), int(centre[1] + 40 * s)), (int(centre[0] + 45 * s), size), SKIN, -1)  # forearm
    tips = {}
    for landmark, (bx, by, tilt, length, radius) in zip((8, 12, 16, 20), FINGERS):
        base = centre + np.array([bx, by]) * s
        tip = base + np.array([np.sin(np.radians(tilt)), -np.cos(np.radians(tilt))]) * length * s
        cv2.line(img, tuple(base.astype(int)), tuple(tip.astype(int)), SKIN, int(2 * radius * s))
        cv2.circle(img, tuple(tip.astype(int)), int(radius * s), SKIN, -1)
        for k in (0.35, 0.68):  # knuckle creases
            cv2.circle(img, tuple((base + (tip - base) * k).astype(int)), 1, (190, 140, 115), -1)
        tips[landmark] = tuple(tip)
    (bx, by), (dx, dy), radius = THUMB
    base = centre + np.array([bx, by]) * s
    tip = base + np.array([dx, dy]) * s
    cv2.line(img, tuple(base.astype(int)), tuple(tip.astype(int)), SKIN, int(2 * radius * s))
    cv2.circle(img, tuple(tip.astype(int)), int(radius * s), SKIN, -1)
    tips[4] = tuple(tip)
    tips[0] = (centre[0], centre[1] + 55 * s)  # the wrist: where the palm meets the forearm
    return cv2.GaussianBlur(img, (5, 5), 0), tips


def test_bundle_declares_the_legacy_input_ranges():
    with zipfile.ZipFile(ensure_hand_bundle()) as zf:
        assert zf.namelist() == ["hand_detector.tflite", "hand_landmarks_detector.tflite"]
        for name, (mean, std) in (("hand_detector.tflite", DETECTOR_NORM), ("hand_landmarks_detector.tflite", LANDMARK_NORM)):
            assert declared_metadata(zf.read(name))[0] == ([mean], [std])


def test_drawn_hand_landmarks_in_canonical_order_and_tracked():
    """Wrist and the five fingertips land on the drawing, in MediaPipe's order (4 thumb, 8 index,
    12 middle, 16 ring, 20 little finger); the hand is the person's right; a drifting hand is followed."""
    img, tips = drawn_hand()
    frames = [np.roll(img, k, axis=1) for k in range(0, 20, 2)]  # 2 px to the right per frame
    with HandLandmarker(ensure_hand_bundle(), fps=25.0) as landmarker:
        found = [landmarker.detect(f) for f in frames]
        nothing = landmarker.detect(np.full_like(img, 120))
    assert [len(h) for h in found] == [1] * len(frames) and nothing == []
    hand = found[0][0]
    assert hand.points.shape == (NUM_LANDMARKS, 2) and hand.person_side == "right"
    px = hand.points * img.shape[1]
    for landmark, (x, y) in tips.items():
        assert np.hypot(px[landmark, 0] - x, px[landmark, 1] - y) < 16, (landmark, px[landmark], (x, y))
    assert px[4, 0] < px[8, 0] < px[12, 0] < px[16, 0] < px[20, 0]  # thumb to little finger, left to right
    assert (px[[8, 12, 16, 20], 1] < px[[5, 9, 13, 17], 1]).all()  # tips above their knuckles: fingers up
    drift = np.mean([h[0].points[:, 0].mean() for h in found[-3:]]) - np.mean([h[0].points[:, 0].mean() for h in found[:3]])
    assert abs(drift * img.shape[1] - 14) < 5  # 7 frames apart at 2 px per frame


def _hand(wrist: tuple[float, float], size: float = 0.1, label: str = "Left") -> Hand:
    points = np.tile(np.array(wrist, np.float32), (NUM_LANDMARKS, 1))
    points[9] += (0.0, -size)  # the middle knuckle: the hand's size
    return Hand(points, label)


def test_speaker_hands_go_to_the_nearest_body_wrist():
    body = np.zeros((33, 3), np.float32)
    body[16, :2], body[15, :2] = (0.3, 0.8), (0.7, 0.8)  # BlazePose: person's right wrist 16 (image left), left 15
    near_right, near_left, stranger = _hand((0.32, 0.78)), _hand((0.66, 0.8), label="Left"), _hand((0.05, 0.1))
    out = speaker_hands([stranger, near_left, near_right], body)
    assert out == {"right": near_right, "left": near_left}  # by the wrists, whatever MediaPipe's label says
    assert speaker_hands([stranger], body) == {}  # another person's hand, far from both wrists
    closer, farther = _hand((0.31, 0.8)), _hand((0.36, 0.8))
    assert speaker_hands([farther, closer], body) == {"right": closer}  # two claims on one wrist: the nearer


def test_errors_name_the_problem(tmp_path):
    from annotate.face_detector import FaceModelError

    with pytest.raises(FaceModelError, match="hand landmark bundle not found"):
        HandLandmarker(tmp_path / "missing.task")
    with pytest.raises(ValueError, match="fps must be > 0"):
        HandLandmarker(ensure_hand_bundle(), fps=0)
    with HandLandmarker(ensure_hand_bundle()) as landmarker, pytest.raises(ValueError, match="frame must be uint8"):
        landmarker.detect(np.zeros((8, 8), np.uint8))
