"""The pose.npy layout and the motion intensity measured from it, on constructed trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from dataset.pose import (
    BODY, BODY_FULL, FACE, FACE_FULL, KEYPOINTS, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, V1_KEYPOINTS, PoseError,
    annotation_motion, check_pose, decode_pose, empty_pose, encode_pose, keypoint_speeds, motion_intensity, motion_levels,
    window_motion,
)


def moving(num_frames: int, which: tuple[int, ...], vx: float, vy: float, fps: float = 25.0) -> np.ndarray:
    """Keypoints `which` start at the centre and move at (vx, vy) clip units per second; others unmeasured."""
    pose = empty_pose(num_frames)
    t = np.arange(num_frames) / fps
    for k in which:
        pose[:, k, 0], pose[:, k, 1], pose[:, k, 2] = 0.5 + vx * t, 0.5 + vy * t, 1.0
    return pose


def test_layout_names_face_then_body_then_hands():
    assert NUM_KEYPOINTS == len(KEYPOINTS) == 57 and V1_KEYPOINTS == 15
    assert [KEYPOINTS[i] for i in (FACE[0], FACE[-1], BODY[0], BODY[-1])] == ["nose", "lower_lip", "neck", "left_wrist"]
    assert [KEYPOINTS[i] for i in (RIGHT_HAND[0], RIGHT_HAND[4], RIGHT_HAND[8], LEFT_HAND[0], LEFT_HAND[-1])] == [
        "right_hand_wrist", "right_hand_thumb_tip", "right_hand_index_tip", "left_hand_wrist", "left_hand_little_tip"]
    groups = [FACE, BODY, RIGHT_HAND, LEFT_HAND]
    assert sorted(i for g in groups for i in g) == list(range(NUM_KEYPOINTS)) and len(KEYPOINTS) == len(set(KEYPOINTS))


def test_v1_files_read_as_v2_and_handless_clips_are_written_as_v1():
    old = moving(6, (0, 13), 0.1, 0.0)[:, :V1_KEYPOINTS]  # a layout v1 array (before the hands)
    back = decode_pose(encode_pose(old), num_frames=6)
    assert back.shape == (6, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(back[:, :V1_KEYPOINTS], old.astype(np.float16).astype(np.float32), equal_nan=True)
    assert (back[:, V1_KEYPOINTS:, 2] == 0).all() and np.isnan(back[:, V1_KEYPOINTS:, :2]).all()
    handless = np.lib.format.read_array(__import__("io").BytesIO(encode_pose(back)))
    assert handless.shape == (6, V1_KEYPOINTS, 3)  # nothing measured past the wrists: written as v1, a quarter the size
    with_hand = moving(6, (0, RIGHT_HAND[4]), 0.1, 0.0)
    data = encode_pose(with_hand)
    assert np.lib.format.read_array(__import__("io").BytesIO(data)).shape == (6, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(decode_pose(data), with_hand.astype(np.float16).astype(np.float32), equal_nan=True)
    # the motion definition is unchanged: hands are not in the body speed
    assert motion_intensity(with_hand)["body_speed"] is None


def test_round_trip_is_float16_exact_and_checks_frames():
    pose = moving(9, (0, 13), 0.1, -0.05)
    data = encode_pose(pose)
    back = decode_pose(data, num_frames=9)
    assert back.dtype == np.float32 and back.shape == (9, NUM_KEYPOINTS, 3)
    np.testing.assert_allclose(back, pose.astype(np.float16).astype(np.float32), equal_nan=True)
    assert np.isnan(back[:, 1, :2]).all() and (back[:, 1, 2] == 0).all()  # unmeasured stays unmeasured
    assert len(data) < 9 * NUM_KEYPOINTS * 3 * 2 + 200  # float16 plus the npy header
    with pytest.raises(PoseError, match="pose has 9 frames, the clip has 10"):
        decode_pose(data, num_frames=10)


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 14, 3), np.float32), r"must be \(num_frames, 57, 3\) \(or layout v1's \(num_frames, 15, 3\)\)"),
    (np.zeros((4, 15, 3), np.int16), "must be a float array"),
    (np.full((4, 15, 3), 2.0, np.float32), r"confidences must be in \[0, 1\]"),
])
def test_bad_arrays_are_named(array, message):
    with pytest.raises(PoseError, match=message):
        check_pose(array)


def test_not_an_npy_file():
    with pytest.raises(PoseError, match="not a numpy array file"):
        decode_pose(b"PK\x03\x04 a zip, not npy")


def test_speed_of_a_constant_motion():
    pose = moving(26, FACE, 0.3, 0.4)  # 0.5 clip heights per second
    speeds = keypoint_speeds(pose, FACE)
    np.testing.assert_allclose(speeds, 0.5, rtol=1e-4)
    m = motion_intensity(pose)
    assert m["face_speed"] == pytest.approx(0.5, rel=1e-4)
    assert m["face_intensity"] == pytest.approx(min(0.5 / FACE_FULL, 1.0), rel=1e-4)
    assert m["body_speed"] is None and m["body_intensity"] is None  # nothing measured on the body


def test_aspect_scales_horizontal_motion_to_clip_heights():
    pose = moving(11, BODY, 0.2, 0.0)  # 0.2 clip widths per second
    assert motion_intensity(pose, aspect=2.0)["body_speed"] == pytest.approx(0.4, rel=1e-4)
    assert motion_intensity(pose, aspect=2.0)["body_intensity"] == pytest.approx(0.4 / BODY_FULL, rel=1e-4)


def test_low_confidence_keypoints_do_not_count_and_intensity_clips():
    pose = moving(11, BODY, 0.0, 10.0)  # very fast: intensity clips at 1
    assert motion_intensity(pose)["body_intensity"] == 1.0
    pose[:, BODY, 2] = 0.3  # below MIN_CONFIDENCE
    assert motion_intensity(pose)["body_speed"] is None
    still = moving(11, BODY, 0.0, 0.0)
    assert motion_intensity(still)["body_intensity"] == 0.0


def test_window_motion_measures_only_its_frames():
    pose = moving(40, BODY, 0.0, 0.0)
    pose[20:, BODY, 1] = 0.5 + 0.6 * np.arange(20)[:, None] / 25.0  # moves from frame 20 on
    assert window_motion(pose, 0, 17) == (None, 0.0)
    face, body = window_motion(pose, 21, 17)
    assert face is None and body == pytest.approx(0.6 / BODY_FULL, rel=1e-3)


def test_levels_are_corpus_quantiles():
    values = [0.05, 0.9, None, 0.3, 0.3, 0.6, 0.1, 0.7, 0.2, 0.4, 0.8]
    levels = motion_levels(values)
    assert levels[2] is None
    ranked = sorted((v, lvl) for v, lvl in zip(values, levels) if v is not None)
    assert [lvl for _, lvl in ranked] == sorted(lvl for _, lvl in ranked)  # monotonic in the value
    assert ranked[0][1] == 0 and ranked[-1][1] == 4
    assert levels[3] == levels[4]  # equal values share a level
    assert motion_levels(list(reversed(values))) == list(reversed(levels))  # depends on the multiset only
    assert motion_levels([None, None]) == [None, None]


def test_annotation_motion():
    assert annotation_motion({"motion": None}) is None
    assert annotation_motion({}) is None
    doc = {"motion": {"face_intensity": 0.2, "body_intensity": None, "face_speed": 0.1, "body_speed": None, "method": "m"}}
    assert annotation_motion(doc) == (0.2, None)
