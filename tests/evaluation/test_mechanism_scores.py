"""The mechanism benchmark's phase-timing scores on hand-made label sequences with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.mechanism.scores import aggregate, chance_levels, majority, phase_frames, score_window

FPS = 25.0
# 50 frames: idle 0-9 (in progress at the reference frame), raise 10-29, wave 30-44, idle 45-49 (5 frames: too short)
PHASES = [
    {"start_s": 0.0, "end_s": 0.4, "label": "idle"},
    {"start_s": 0.4, "end_s": 1.2, "label": "raise_right_hand"},
    {"start_s": 1.2, "end_s": 1.8, "label": "wave_right_hand"},
    {"start_s": 1.8, "end_s": 2.0, "label": "idle"},
]


def labels(*runs: tuple[str, int]) -> list[str]:
    return [label for label, n in runs for _ in range(n)]


def test_phase_frames_and_majority() -> None:
    assert phase_frames(0.4, 1.2, 50, FPS) == range(10, 30)
    assert phase_frames(1.8, 9.0, 50, FPS) == range(45, 50)  # clipped to the window
    assert phase_frames(0.39999999, 0.4, 50, FPS) == range(10, 10)  # float round-off is not a frame
    assert majority(["a", "b", "b", "a"]) == "a"  # ties: the first to reach the top count
    assert majority(["idle", "wave", "wave"]) == "wave"


def test_perfect_copy_and_late_reader() -> None:
    perfect = labels(("idle", 10), ("raise_right_hand", 20), ("wave_right_hand", 15), ("idle", 5))
    scored, covered, agree = score_window(perfect, PHASES, FPS, min_frames=10)
    assert [p.label for p in scored] == ["idle", "raise_right_hand", "wave_right_hand"]  # the 5-frame idle is not scored
    assert [p.new for p in scored] == [False, True, True]
    assert covered == agree == 50
    out = aggregate([(scored, covered, agree)])
    assert out["new_action_accuracy"] == 1.0 and out["num_new_action_phases"] == 2
    assert out["temporal_iou"] == 1.0 and out["frame_accuracy"] == 1.0 and math.isnan(out["new_idle_accuracy"])

    # copying the reference frame: idle everywhere
    copy = aggregate([score_window(["idle"] * 50, PHASES, FPS)])
    assert copy["new_action_accuracy"] == 0.0 and copy["phase_accuracy"] == pytest.approx(1 / 3)
    assert copy["frame_accuracy"] == pytest.approx(15 / 50) and copy["temporal_iou"] == 0.0

    # the right actions, 6 frames late: still performed (majority), IoU < 1
    late = labels(("idle", 16), ("raise_right_hand", 20), ("wave_right_hand", 14))
    out = aggregate([score_window(late, PHASES, FPS)])
    assert out["new_action_accuracy"] == 1.0
    assert out["temporal_iou"] == pytest.approx(((14 / 26) + (9 / 20)) / 2)


def test_leaks_balance_and_counts() -> None:
    # raise done in both action phases: raise performed but leaked into wave's span; wave not performed
    leaky = labels(("idle", 10), ("raise_right_hand", 35), ("idle", 5))
    scored, _, _ = score_window(leaky, PHASES, FPS)
    raise_phase = next(p for p in scored if p.label == "raise_right_hand")
    assert raise_phase.performed and raise_phase.leaked
    out = aggregate([score_window(leaky, PHASES, FPS)])
    assert out["new_action_accuracy"] == 0.5 and out["exclusive_accuracy"] == pytest.approx(1 / 3)
    # balanced: raise 1/1 in window A and 0/1 in window B, wave 1/1 -> (0.5 + 1) / 2; pooled 2/3... over 4 phases
    a = score_window(labels(("idle", 10), ("raise_right_hand", 20), ("wave_right_hand", 20)), PHASES, FPS)
    b = score_window(labels(("idle", 30), ("wave_right_hand", 20)), PHASES, FPS)
    out = aggregate([a, b])
    assert out["per_action"] == {"raise_right_hand": 0.5, "wave_right_hand": 1.0}
    assert out["new_action_balanced"] == pytest.approx(0.75) and out["new_action_accuracy"] == pytest.approx(0.75)
    assert out["num_new_action_phases"] == 4 and out["num_phases"] == 6


def test_new_idle_and_chance() -> None:
    phases = [{"start_s": 0.0, "end_s": 0.8, "label": "wave_right_hand"}, {"start_s": 0.8, "end_s": 2.0, "label": "idle"}]
    stays = aggregate([score_window(labels(("wave_right_hand", 20), ("idle", 30)), phases, FPS)])
    keeps_waving = aggregate([score_window(["wave_right_hand"] * 50, phases, FPS)])
    assert stays["new_idle_accuracy"] == 1.0 and keeps_waving["new_idle_accuracy"] == 0.0
    assert math.isnan(stays["new_action_accuracy"])  # the only action was in progress at the reference frame
    assert chance_levels(["idle", "a", "b", "c"])["new_action_accuracy"] == 0.25


def test_motion_control_summary_on_constructed_measurements():
    from evaluation.mechanism.motion import requests, summarise

    train = np.array([[0.1, 0.0], [0.2, 0.1], [0.3, 0.5], [np.nan, 0.9], [0.4, 0.6]])
    asked = requests(train)
    assert list(asked) == ["low", "mid", "high"]
    assert asked["low"][1] < asked["mid"][1] < asked["high"][1] and asked["mid"] == (0.25, 0.5)  # NaN-aware percentiles
    following = {name: {f"w{i}": (0.1, asked[name][1] + 0.01 * i) for i in range(3)} for name in asked}
    out = summarise(asked, following, {"no request": {"w0": (0.1, 0.3)}})
    assert out["body_rises_with_request"] and out["spearman_body"] > 0.9
    assert out["levels"]["mid"]["measured_body"] == pytest.approx(asked["mid"][1] + 0.01)
    ignoring = {name: {f"w{i}": (0.1, 0.2 + 0.01 * i) for i in range(3)} for name in asked}
    flat = summarise(asked, ignoring, {})
    assert not flat["body_rises_with_request"] and abs(flat["spearman_body"]) < 1e-9
    unread = summarise(asked, {name: {"w0": (None, None)} for name in asked}, {})
    assert unread["spearman_body"] is None and unread["levels"]["low"]["measured_body"] is None


def test_pose_control_errors_on_constructed_keypoints():
    from dataset.pose import empty_pose
    from evaluation.mechanism.pose_control import aggregate as pose_aggregate
    from evaluation.mechanism.pose_control import keypoint_errors, markdown_section

    real = empty_pose(5)
    real[:, 13] = (0.5, 0.5, 1.0)  # right hand
    real[:, 8] = (0.5, 0.8, 1.0)  # neck
    off = real.copy()
    off[:, 13, 0] += 0.3  # the hand 0.3 frame heights away in every frame
    off[2:, 8, 2], off[2:, 8, :2] = 0.0, np.nan  # the neck lost from frame 2 on
    off[0] = (0.0, 0.0, 1.0)  # frame 0 (the reference) is not scored
    row = keypoint_errors(real, off)
    assert row["pairs"] == 4 + 1 and row["hand_pairs"] == 4 and row["hand_hits"] == 0 and row["real"] == 8
    assert row["hand_error_sum"] == pytest.approx(1.2)
    same = keypoint_errors(real, real)
    out = pose_aggregate([row, same])
    assert out["hand_error"] == pytest.approx(0.15) and out["hand_pck"] == 0.5 and out["found"] == pytest.approx(13 / 16)
    assert out["keypoint_error"] == pytest.approx(1.2 / 13, abs=1e-4)  # rounded to 4 places
    assert pose_aggregate([])["keypoint_error"] is None
    lines = markdown_section({"rows": {"x": out}, "pck_radius": 0.1})
    assert any(line.startswith("| x | 0.092 | 0.150 | 0.500 | 0.812 | 2 |") for line in lines)


def test_gesture_loudness_figures_on_constructed_windows():
    from evaluation.mechanism.refocus import summarise, window_figures

    level = np.linspace(0.0, 1.0, 30)
    follows = window_figures(0.1 + 0.4 * level, level)  # gesture grows with loudness
    assert follows["correlation"] == pytest.approx(1.0)
    assert follows["loud"] == pytest.approx(0.1 + 0.4 * level[level >= np.quantile(level, 2 / 3)].mean())
    assert follows["quiet"] == pytest.approx(0.1 + 0.4 * level[level <= np.quantile(level, 1 / 3)].mean())
    against = window_figures(0.5 - 0.4 * level, level)
    assert against["correlation"] == pytest.approx(-1.0) and against["loud"] < against["quiet"]
    assert window_figures(np.full(30, 0.2), level) is None  # a still window: no correlation to speak of
    assert window_figures(np.where(level < 0.9, np.nan, 0.3), level) is None  # too few frames read
    out = summarise([follows, against, None])
    assert out["windows"] == 2 and out["correlation"] == pytest.approx(0.0, abs=1e-4)
    assert out["ratio"] == pytest.approx(round((follows["loud"] + against["loud"]) / (follows["quiet"] + against["quiet"]), 3))
    assert summarise([None])["correlation"] is None


def test_identity_figures_on_constructed_videos(tmp_path):
    """Runs of consecutive windows; a face that keeps its colour is identified, one that drifts to
    another identity's colour is not; per-window error and markdown."""
    import json

    from evaluation.mechanism.identity import long_windows, markdown_section, score_video, summarise

    for key, clip, a, b in (("c0_w0000", "c0", 0, 17), ("c0_w0017", "c0", 17, 34), ("c0_w0034", "c0", 34, 51),
                            ("c1_w0000", "c1", 0, 17), ("c2_w0000", "c2", 0, 17), ("c2_w0034", "c2", 34, 51)):
        (tmp_path / f"{key}.json").write_text(json.dumps({"source": {"clip_key": clip, "start_frame": a, "end_frame": b}}))
    assert long_windows(tmp_path) == [["c0_w0000", "c0_w0017", "c0_w0034"]]  # c1: one window; c2: a gap

    from dataset.synth import rig
    from dataset.synth.avatar import PuppetRenderer

    renderer = PuppetRenderer()

    def video(tints):
        frames = []
        for tint in tints:
            renderer.set_identity(tint)
            frame = np.full((128, 128, 3), 104, np.uint8)
            renderer.draw(frame, (64.0, 80.0), 128 / 3.4, rig.pose_at("idle", 0.5, 1.0))
            frames.append(frame)
        return np.stack(frames)

    own, other = rig.FACE_TINTS[0], rig.FACE_TINTS[1]
    from evaluation.mechanism.identity import face_colours

    palette = {"me": face_colours(video([own])), "them": face_colours(video([other]))}
    kept = score_video(video([own] * 6), palette["me"][0], "me", palette, [0, 3])
    drift = score_video(video([own] * 3 + [other] * 3), palette["me"][0], "me", palette, [0, 3])
    assert [r["identified"] for r in kept] == [1.0, 1.0] and kept[1]["error"] < 1e-6
    assert drift[0] == kept[0] and drift[1]["identified"] == 0.0 and drift[1]["error"] > 0.2
    out = summarise([kept, drift])
    assert out["windows"][1] == {"videos": 2, "error": round(drift[1]["error"] / 2, 4), "identified": 0.5}
    lines = markdown_section({"rows": {"x": out}, "identities": 2, "motion_frames": 5})
    assert any(line.startswith("| x | 0.0000 / 1.00 |") for line in lines)


def test_lip_sync_figures_on_constructed_videos():
    """A drawn mouth that opens with the audio: in sync at lag 0 with full mouth r; the same video
    three frames late is found three frames late; a still mouth follows nothing."""
    from evaluation.mechanism.lip_sync import aggregate as lip_aggregate
    from evaluation.mechanism.lip_sync import markdown_section, openness, placements, window_scores

    n, rng = 65, np.random.default_rng(0)
    opening = np.clip(np.convolve(rng.random(n + 8), np.ones(3) / 3, mode="same")[4:-4], 0, 1)  # syllable-like, 0..1

    def video(levels):
        frames = np.full((len(levels), 64, 64, 3), 90, np.uint8)
        yy, xx = np.mgrid[16:48, 16:48]
        frames[:, 16:48, 16:48] = (140 + 70 * ((yy // 3 + xx // 3) % 2))[None, ..., None]  # a textured face
        for t, level in enumerate(levels):
            half = int(round(0.5 + 2.5 * level))  # a quarter of the measured region at most, as the puppet's
            frames[t, 41 - half:41 + half, 29:35] = 30  # the mouth, opening with `level`
        return frames

    audio = np.concatenate([np.sin(np.arange(640) * 0.3) * (0.02 + 0.5 * a) for a in opening]).astype(np.float32)
    kp = np.zeros((n, 15, 3))
    kp[:, 3] = (32 / 64, 41 / 64, 1)  # mouth
    kp[:, 4], kp[:, 5] = (16 / 64, 32 / 64, 1), (48 / 64, 32 / 64, 1)  # ears, a face 32 px wide
    where = placements(kp, (64, 64))
    assert where[0] == (16.0, 16.0, 32.0, 32.0, 32.0, 41.0)
    missing = kp.copy()
    missing[5:, 3, 2] = 0  # no mouth read from frame 5 on: the fallback's placement
    assert placements(missing, (64, 64), fallback=where)[9] == where[9] and placements(missing, (64, 64))[9] is None

    real = openness(video(opening), where)
    drawn = np.round(0.5 + 2.5 * opening)  # the mouth's half height as drawn
    assert np.corrcoef(real, drawn)[0, 1] > 0.95
    same = window_scores(real, real, audio)
    assert same["mouth_r"] == pytest.approx(1.0) and same["offset"] == 0 and same["confidence"] > 0.5
    late = window_scores(openness(video(np.r_[opening[:3], opening[:-3]]), where), real, audio)
    assert late["offset"] == 3 and late["mouth_r"] < 0.5  # > 0: the video lags the audio
    still = window_scores(openness(video(np.full(n, opening[0])), where), real, audio)
    assert math.isnan(still["mouth_r"]) and still["confidence"] == 0.0
    out = lip_aggregate([same, late, still])
    assert out["windows"] == 3 and out["in_sync"] == pytest.approx(1 / 3, abs=1e-4)
    assert out["mouth_r"] == pytest.approx(round((1.0 + late["mouth_r"] + 0.0) / 3, 4), abs=1e-4)  # still counts as 0
    from evaluation.mechanism.lip_sync import latent_frame_means, pearson

    means = latent_frame_means(np.arange(10.0))
    assert means.tolist() == [0.0, 2.5, 2.5, 2.5, 2.5, 6.5, 6.5, 6.5, 6.5, 9.0]  # frame 0, then groups of 4
    slow = np.sin(np.arange(n) * 2 * np.pi / 12)  # a mouth that opens every 12 frames partly survives the means
    assert pearson(latent_frame_means(slow)[1:], slow[1:]) > 0.6
    assert abs(pearson(latent_frame_means(real)[1:], real[1:])) < 0.5  # one that changes every frame does not
    lines = markdown_section({"rows": {"x": out}, "max_lag": 8, "crop_scale": None})
    assert any(line.startswith("| x | ") for line in lines) and "crop_scale=1.8" in lines[-1]


def test_paired_lip_sync_differences_on_constructed_windows():
    """An arm against (a) window by window: a constant gain is exact, a noisy one is found with an
    interval round it, pure noise gives an interval holding 0; only shared windows pair."""
    from evaluation.mechanism.lip_sync import markdown_section, paired_differences

    rng = np.random.default_rng(1)
    base = {f"w{i}": {"mouth_r": float(rng.uniform(-0.2, 0.5)), "confidence": float(rng.uniform(0.1, 0.6)), "offset": 5}
            for i in range(40)}
    constant = {k: {**row, "mouth_r": row["mouth_r"] + 0.1, "offset": 0} for k, row in base.items()}
    d = paired_differences(constant, base)
    assert d["windows"] == 40 and d["mouth_r"] == {"mean": 0.1, "low": 0.1, "high": 0.1, "better": 40, "worse": 0}
    assert d["in_sync"]["mean"] == 1.0 and d["confidence"]["mean"] == 0.0 and d["confidence"]["better"] == 0

    gain = {k: {**row, "mouth_r": row["mouth_r"] + rng.normal(0.3, 0.05)} for k, row in base.items()}
    g = paired_differences(gain, base)["mouth_r"]
    assert 0 < g["low"] < g["mean"] < g["high"] and g["low"] < 0.3 < g["high"] and g["high"] - g["low"] < 0.06
    assert paired_differences(gain, base) == paired_differences(gain, base)  # seeded: the same interval every run
    noise = {k: {**row, "confidence": row["confidence"] + rng.normal(0, 0.1)} for k, row in base.items()}
    n = paired_differences(noise, base)["confidence"]
    assert n["low"] < 0 < n["high"] and n["better"] + n["worse"] == 40

    still = {k: {**row, "mouth_r": float("nan")} for k, row in list(base.items())[:3]}  # a still mouth: r counts as 0
    s = paired_differences({**still, "other": base["w0"]}, base)
    assert s["windows"] == 3 and s["mouth_r"]["mean"] == pytest.approx(-np.mean([base[k]["mouth_r"] for k in still]), abs=1e-4)
    assert paired_differences({"w0": base["w0"]}, base) is None  # one shared window: no comparison

    paired = {"(i) x": {"against": "(a) y", **paired_differences(gain, base)}}
    lines = markdown_section({"rows": {}, "paired": paired, "max_lag": 8, "crop_scale": 1.8})
    assert any(line.startswith("| arm − (a) y |") for line in lines)
    assert any(line.startswith("| (i) x | +0.") and "(40↑ 0↓)" in line for line in lines)
