from __future__ import annotations

import pytest

from annotate.config import FaceConfig, ShotConfig
from annotate.plan import classify_sample, clips_from_shots, face_verdict, plan_source, shots_from_cuts

SHOTS = ShotConfig(min_clip_s=2.0, max_clip_s=5.0, trim_s=0.2)
FACE = FaceConfig(min_face_height=0.1, min_dominant_ratio=0.8, dominance=4.0)
ONE = [0.4, 0.2, 0.6, 0.5, 0.9]  # x0, y0, x1, y1, score: a face 0.3 high
SMALL = [0.45, 0.3, 0.5, 0.35, 0.9]


def test_shots_from_cuts_ignores_edges_and_duplicates():
    assert shots_from_cuts(100, [0, 40, 40, 100, 70]) == [(0, 40), (40, 70), (70, 100)]
    assert shots_from_cuts(10, []) == [(0, 10)]


def test_clips_are_trimmed_split_evenly_and_short_shots_rejected():
    clips = clips_from_shots([(0, 40), (40, 300)], SHOTS)
    first, *rest = clips
    assert first["status"] == "rejected" and first["reason"] == "shot_too_short"
    # 260 frames - 2 * 5 trimmed = 250 = 10 s -> two clips of 125 frames (<= 5 s each)
    assert [(c["start"], c["stop"]) for c in rest] == [(45, 170), (170, 295)]
    assert all(c["status"] == "ok" for c in rest)


@pytest.mark.parametrize("length", range(50, 700, 7))
def test_split_clips_always_respect_both_bounds(length):
    clips = [c for c in clips_from_shots([(0, length + 10)], SHOTS) if c["status"] == "ok"]
    for clip in clips:
        assert 50 <= clip["stop"] - clip["start"] <= 125
    if clips:
        assert clips[0]["start"] == 5 and clips[-1]["stop"] == length + 5


def test_sample_classes():
    assert classify_sample([], FACE) == "none"
    assert classify_sample([SMALL], FACE) == "small"
    assert classify_sample([ONE, [0.1, 0.2, 0.3, 0.5, 0.8]], FACE) == "multiple"
    assert classify_sample([ONE, SMALL], FACE) == "dominant"  # a tiny background face does not count


def test_face_verdicts():
    steady = [[n, [ONE]] for n in range(0, 100, 12)]
    ok = face_verdict(steady, 0, 100, FACE)
    assert ok["status"] == "ok" and ok["dominant_ratio"] == 1.0 and ok["bbox"] == ONE[:4] and ok["max_faces"] == 1
    two = [[n, [ONE, [0.1, 0.2, 0.3, 0.5, 0.8]]] for n in range(0, 100, 12)]
    assert face_verdict(two, 0, 100, FACE)["reason"] == "multiple_faces"
    assert face_verdict([[n, []] for n in range(0, 100, 12)], 0, 100, FACE)["reason"] == "no_face"
    assert face_verdict([[n, [SMALL]] for n in range(0, 100, 12)], 0, 100, FACE)["reason"] == "face_too_small"
    mostly = [[n, [ONE] if n < 60 else []] for n in range(0, 100, 12)]  # 5 of 9 samples
    verdict = face_verdict(mostly, 0, 100, FACE)
    assert verdict["status"] == "rejected" and verdict["detected_ratio"] == pytest.approx(5 / 9, abs=1e-3)
    assert face_verdict(steady, 500, 600, FACE)["reason"] == "no_face"  # no sample inside


def test_plan_source_numbers_candidates_in_time_order():
    analysis = {"num_frames": 260, "cuts": [30, 150], "faces": [[n, [ONE] if n < 150 else []] for n in range(0, 260, 12)]}
    planned = plan_source(analysis, SHOTS, FACE)
    assert [p["index"] for p in planned] == [0, 1, 2]
    assert [p["status"] for p in planned] == ["rejected", "ok", "rejected"]
    assert [p["reason"] for p in planned] == ["shot_too_short", None, "no_face"]
    assert planned[1]["face"]["bbox"] == ONE[:4]
