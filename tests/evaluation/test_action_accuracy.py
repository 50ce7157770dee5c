"""Phase accuracy, exclusive accuracy and temporal precision on label arrays."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.action_accuracy import ActionScoreConfig, aggregate_actions, phase_frames, score_actions, score_clip

FPS = 25.0
PHASES = [
    {"start_s": 0.0, "end_s": 1.0, "label": "wave"},
    {"start_s": 1.0, "end_s": 2.0, "label": "nod"},
    {"start_s": 2.4, "end_s": 4.0, "label": "point"},  # a gap 2.0-2.4 s
]


def truth(n: int = 100) -> list[str]:
    labels = ["none"] * n
    for p in PHASES:
        for t in phase_frames(p["start_s"], p["end_s"], n, FPS):
            labels[t] = p["label"]
    return labels


def test_phase_frames_are_half_open_and_clipped():
    assert phase_frames(0.0, 1.0, 100, FPS) == range(0, 25)
    assert phase_frames(1.0, 2.0, 100, FPS) == range(25, 50)
    assert phase_frames(0.5, 9.0, 30, FPS) == range(13, 30)  # 12.5 rounds up to frame 13
    assert len(phase_frames(5.0, 6.0, 30, FPS)) == 0


def test_exact_predictions_score_one():
    clip = score_clip(truth(), PHASES, FPS)
    assert clip.phase_accuracy == 1.0 and clip.temporal_precision == 1.0
    assert all(p.performed and not p.leaked for p in clip.phases)
    assert [p.num_frames for p in clip.phases] == [25, 25, 40]


def test_majority_rule_and_threshold():
    pred = truth()
    for t in range(25, 38):  # 13 of nod's 25 frames become "none": 12/25 < 0.5
        pred[t] = "none"
    clip = score_clip(pred, PHASES, FPS)
    assert [p.performed for p in clip.phases] == [True, False, True]
    assert clip.phases[1].fraction == pytest.approx(12 / 25)
    assert score_clip(pred, PHASES, FPS, ActionScoreConfig(min_fraction=0.4)).phase_accuracy == 1.0


def test_action_in_the_wrong_phase_leaks_and_lowers_precision():
    pred = truth()
    for t in range(25, 50):  # "wave" performed again during the nod phase
        pred[t] = "wave"
    clip = score_clip(pred, PHASES, FPS)
    wave, nod, point = clip.phases
    assert wave.performed and wave.leaked and not nod.performed and point.performed and not point.leaked
    assert clip.temporal_precision == pytest.approx((25 + 40) / (25 + 25 + 40))
    agg = aggregate_actions([clip])
    assert agg["phase_accuracy"] == pytest.approx(2 / 3) and agg["exclusive_accuracy"] == pytest.approx(1 / 3)


def test_shuffled_phases_drop_towards_chance():
    rng = np.random.default_rng(0)
    labels = ["wave", "nod", "point", "shrug"]
    clips_true, clips_shuffled = [], []
    for _ in range(40):
        chosen = list(rng.permutation(labels))
        phases = [{"start_s": i * 1.0, "end_s": (i + 1) * 1.0, "label": chosen[i]} for i in range(4)]
        pred = [chosen[t // 25] for t in range(100)]
        clips_true.append(score_clip(pred, phases, FPS))
        shuffled = [dict(p, label=lab) for p, lab in zip(phases, rng.permutation(chosen))]
        clips_shuffled.append(score_clip(pred, shuffled, FPS))
    assert aggregate_actions(clips_true)["phase_accuracy"] == 1.0
    # A random permutation of 4 labels keeps each one in place with probability 1/4.
    assert aggregate_actions(clips_shuffled)["phase_accuracy"] < 0.45


def test_score_actions_runs_the_detector_callable():
    frames = np.zeros((100, 2, 2, 3), np.uint8)
    agg, clips = score_actions([(frames, PHASES, FPS)], lambda f, fps: truth(len(f)))
    assert agg["phase_accuracy"] == 1.0 and agg["num_phases"] == 3 and len(clips) == 1
    with pytest.raises(ValueError, match="returned 3 labels for 100 frames"):
        score_actions([(frames, PHASES, FPS)], lambda f, fps: ["a", "b", "c"])
    with pytest.raises(ValueError, match="lacks key 'label'"):
        score_clip(truth(), [{"start_s": 0.0, "end_s": 1.0}], FPS)
    with pytest.raises(ValueError, match="actions.min_fraction"):
        ActionScoreConfig(min_fraction=0.0)
