"""Fast checks of the synthetic generator's pieces (no video encoding): config, plans, rig, reader."""

from __future__ import annotations

import numpy as np
import pytest

from dataset.synth import detect_actions, rig
from dataset.synth.avatar import PuppetRenderer
from dataset.synth.corpus import SynthConfig
from dataset.synth.plan import NEGATIVE_KINDS, plan_video
from dataset.synth.scenes import SCENE_IMAGES, PanningScene

RES = ((640, 360), (854, 480), (960, 540), (1280, 720))


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"videos": 0}, "videos must be >= 1, got 0"),
        ({"min_duration": 2.0}, "min_duration must be >= 4 seconds, got 2.0"),
        ({"min_duration": 20.0, "max_duration": 10.0}, "max_duration must be in"),
        ({"resolutions": "640x361"}, "'640x361'"),
        ({"resolutions": "big"}, "'big'"),
        ({"preset": "turbo"}, "'turbo'"),
        ({"crf": 99}, "crf must be in [0, 51], got 99"),
        ({"out": " "}, "out must be a folder path"),
    ],
)
def test_config_errors_name_key_and_value(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        SynthConfig(**{"out": "x", **kwargs})
    assert needle in str(info.value)


def test_plans_cycle_formats_and_cover_negative_shots() -> None:
    plans = [plan_video(3, i, min_duration=25, max_duration=35, resolutions=RES) for i in range(4)]
    assert [p.vfr for p in plans] == [False, True, False, False]
    assert [str(p.rate) for i, p in enumerate(plans) if i != 1] == ["25", "30000/1001", "30"]
    assert {(p.width, p.height) for p in plans} == set(RES)
    assert {p.sample_rate for p in plans} == {16000, 44100, 48000}
    kinds = {s.kind for p in plans for s in p.shots}
    assert set(NEGATIVE_KINDS) <= kinds and "talk" in kinds
    vfr_steps = np.unique(np.diff(plans[1].pts))
    assert len(vfr_steps) > 1  # really variable
    for p in plans:
        assert 25 <= p.duration_s <= 35.1
        assert p.shots[0].start_frame == 0 and p.shots[-1].end_frame == p.num_frames
        assert [s.transition for s in p.shots].count("fade") == 1
        for a, b in zip(p.shots, p.shots[1:]):
            assert a.end_frame == b.start_frame
        labels = {ph.label for s in p.shots for ph in s.phases}
        assert labels <= set(rig.ACTIONS)


def test_plan_is_a_pure_function_of_seed_and_index() -> None:
    a = plan_video(7, 2, min_duration=10, max_duration=12, resolutions=RES)
    b = plan_video(7, 2, min_duration=10, max_duration=12, resolutions=RES)
    c = plan_video(8, 2, min_duration=10, max_duration=12, resolutions=RES)
    assert a.shots == b.shots and np.array_equal(a.pts, b.pts)
    assert a.shots != c.shots


def test_phases_cover_avatar_shots_and_last_long_enough() -> None:
    for seed in range(6):
        p = plan_video(seed, seed, min_duration=20, max_duration=40, resolutions=RES)
        t = p.times_s
        for shot in p.shots:
            if shot.kind == "scene":
                assert shot.phases == ()
                continue
            assert shot.phases[0].start_frame == shot.start_frame and shot.phases[-1].end_frame == shot.end_frame
            for a, b in zip(shot.phases, shot.phases[1:]):
                assert a.end_frame == b.start_frame and a.label != b.label
            assert all(t[ph.end_frame] - t[ph.start_frame] >= 0.5 - 1e-9 for ph in shot.phases)


@pytest.mark.parametrize("label", sorted(rig.ACTIONS))
def test_poses_start_and_end_at_rest(label: str) -> None:
    rest = rig.Pose()
    for t in (0.0, 2.0):
        pose = rig.pose_at(label, t, 2.0)
        assert np.allclose(pose.right_hand, rest.right_hand, atol=1e-9)
        assert np.allclose(pose.left_hand, rest.left_hand, atol=1e-9)
        assert abs(pose.head_dx) < 1e-9 and abs(pose.head_dy) < 1e-9 and abs(pose.head_angle) < 1e-9
    with pytest.raises(ValueError, match="unknown action"):
        rig.pose_at("dance", 0.0, 1.0)


def test_reader_labels_every_action_on_a_still_render() -> None:
    """Mid-phase stills of each arm action and tilt read back correctly at several sizes."""
    renderer = PuppetRenderer()
    for h, w in ((180, 320), (360, 640), (720, 1280)):
        for label in ("idle", "raise_right_hand", "raise_left_hand", "wave_right_hand", "both_hands_up",
                      "point_forward", "tilt_head"):
            frames = []
            for t in np.linspace(0.8, 1.2, 5):
                frame = np.full((h, w, 3), 150, np.uint8)
                scale = h / 2.66
                renderer.draw(frame, (w / 2, 0.015 * h + rig.TOP_EXTENT * scale), scale, rig.pose_at(label, t, 2.0))
                frames.append(frame)
            assert detect_actions(np.stack(frames))[1:-1] == [label] * 3, (label, h)


def test_reader_sees_no_avatar_in_scenes() -> None:
    rng = np.random.default_rng(0)
    for name in SCENE_IMAGES:
        scene = PanningScene(name, 180, 320, rng)
        frames = np.stack([scene.frame(p) for p in np.linspace(0, 1, 4)])
        assert detect_actions(frames) == [rig.NO_AVATAR] * 4, name


def test_reader_input_contract() -> None:
    with pytest.raises(ValueError, match="uint8"):
        detect_actions(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        detect_actions([np.zeros((8, 8), np.uint8)])
    assert detect_actions(np.zeros((0, 8, 8, 3), np.uint8)) == []


def test_mechanism_profile_plans_talking_shots_with_balanced_arm_actions() -> None:
    plans = [plan_video(5, i, min_duration=28, max_duration=34, resolutions=((320, 180),), profile="mechanism")
             for i in range(12)]
    counts = dict.fromkeys(rig.ARM_ACTIONS, 0)
    for p in plans:
        assert p.profile == "mechanism" and not p.vfr and str(p.rate) == "25" and p.sample_rate == 16000
        assert {s.kind for s in p.shots} == {"talk"} and {s.transition for s in p.shots[1:]} == {"cut"}
        assert all(s.fade_in == s.fade_out == 0 for s in p.shots)
        greys = [s.plain_grey for s in p.shots]
        assert all(g is not None for g in greys) and all(a != b for a, b in zip(greys, greys[1:]))  # cuts stay visible
        t = p.times_s
        for shot in p.shots:
            assert shot.phases[0].start_frame == shot.start_frame and shot.phases[-1].end_frame == shot.end_frame
            assert shot.phases[0].label == shot.phases[-1].label == "idle"
            for a, b in zip(shot.phases, shot.phases[1:]):
                assert a.end_frame == b.start_frame and a.label != b.label
            for ph in shot.phases:
                seconds = t[ph.end_frame] - t[ph.start_frame]
                assert ph.label == "idle" or ph.label in rig.ARM_ACTIONS
                if ph.label != "idle":
                    assert 1.0 - 0.04 <= seconds <= 2.0 + 0.04  # one frame of rounding each side
                    counts[ph.label] += 1
    # an action bag per video: every action appears equally often, up to one per video
    assert min(counts.values()) >= max(counts.values()) - len(plans), counts
    assert min(counts.values()) >= 20


def test_mechanism_profile_is_reproducible_and_leaves_the_default_alone() -> None:
    kw = dict(min_duration=10, max_duration=12, resolutions=RES)
    assert plan_video(2, 1, **kw, profile="mechanism").shots == plan_video(2, 1, **kw, profile="mechanism").shots
    a, b = plan_video(2, 1, **kw), plan_video(2, 1, **kw, profile="default")
    assert a.shots == b.shots and np.array_equal(a.pts, b.pts) and b.profile == "default"
    with pytest.raises(ValueError, match="profile must be one of"):
        plan_video(2, 1, **kw, profile="fancy")
    with pytest.raises(ValueError, match="profile must be one of default, mechanism, got 'fancy'"):
        SynthConfig(out="x", profile="fancy")


@pytest.mark.parametrize(("vigour", "identity"), [(0.0, 0), (1.0, 1), (1.0, 2), (1.0, 3), (1.0, 4), (1.0, 5)])
def test_reader_labels_mechanism_renders_at_64_px(vigour: float, identity: int) -> None:
    """The mechanism profile's framing and big gloves read back at the benchmark's 64 px after H.264,
    also with the strongest beat gestures (vigour 1 at full loudness) and every identity's face tint."""
    import io

    import av
    import cv2

    from dataset.media import encode_mp4
    from dataset.synth.render import MECHANISM_LOOK, mechanism_reach

    renderer = PuppetRenderer()
    renderer.set_identity(rig.FACE_TINTS[identity])
    h, w = 180, 320
    scale = h / 3.4
    reach_up, reach_down = mechanism_reach()
    neck = (w / 2, (h - (reach_up + reach_down) * scale) / 2 + reach_up * scale)
    for label in ("idle", *rig.ARM_ACTIONS):
        frames = []
        for t in np.linspace(0.0, 1.5, 38):
            frame = np.full((h, w, 3), 104, np.uint8)
            beat = rig.beat_offset(vigour, 1.0, t)
            renderer.draw(frame, neck, scale, rig.pose_at(label, t, 1.5, beat=beat), **MECHANISM_LOOK)
            x0 = int(neck[0] - h / 2)
            frames.append(cv2.resize(frame[:, x0:x0 + h], (64, 64), interpolation=cv2.INTER_AREA))
        with av.open(io.BytesIO(encode_mp4(np.stack(frames), fps=25, crf=20))) as container:
            small = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
        labels = detect_actions(small)
        assert labels[8:30] == [label] * 22, (label, labels)


def test_beat_gestures_pump_actions_and_lift_idle_hands() -> None:
    """Beats: none at beat 0 (the default profile's poses), a hold pumps the arm back along its reach,
    idle lifts both hands straight up but stays at rest near the phase's edges."""
    for label in rig.ACTIONS:
        assert rig.pose_at(label, 0.7, 2.0, beat=0.0) == rig.pose_at(label, 0.7, 2.0)
    rest = rig.Pose()
    held = rig.pose_at("raise_right_hand", 1.0, 2.0, beat=1.0)
    reach = 1.0 - rig.HOLD_PUMP
    assert np.allclose(held.right_hand, np.array(rig.REST[1]) + reach * (np.array(rig.RAISED[1]) - rig.REST[1]))
    assert np.allclose(held.right_elbow, np.array(rig.REST[0]) + reach * (np.array(rig.RAISED[0]) - rig.REST[0]))
    assert held.left_hand == rest.left_hand
    idle = rig.pose_at("idle", 1.0, 2.0, beat=0.5)
    assert np.allclose(np.subtract(idle.right_hand, rest.right_hand), (0.0, -0.5 * rig.IDLE_LIFT))
    assert np.allclose(np.subtract(idle.left_elbow, rest.left_elbow), (0.0, -0.25 * rig.IDLE_LIFT))
    assert rig.pose_at("idle", 0.5 * rig.IDLE_CLEAR_S, 2.0, beat=1.0) == rest
    assert rig.pose_at("idle", 2.0 - 0.5 * rig.IDLE_CLEAR_S, 2.0, beat=1.0) == rest
    # the pump is vigour x loudness x a (1 - cos) cycle at the vigour's rate
    assert rig.beat_offset(0.0, 1.0, 0.3) == 0.0 and rig.beat_offset(1.0, 0.0, 0.3) == 0.0
    hz = rig.beat_hz(0.8)
    assert rig.BEAT_HZ[0] < hz < rig.BEAT_HZ[1]
    assert rig.beat_offset(0.8, 0.5, 0.5 / hz) == pytest.approx(0.4)
    assert rig.beat_offset(0.8, 0.5, 1.0 / hz) == pytest.approx(0.0, abs=1e-12)


def test_gesture_loudness_smooths_and_saturates() -> None:
    from dataset.synth.render import GESTURE_FULL_LOUDNESS, GESTURE_SMOOTH_FRAMES, gesture_loudness

    assert np.allclose(gesture_loudness(np.full(30, 0.3)), 0.3 / GESTURE_FULL_LOUDNESS)
    assert np.allclose(gesture_loudness(np.ones(30)), 1.0)
    spike = np.zeros(31)
    spike[15] = 0.6
    out = gesture_loudness(spike)
    assert out.shape == (31,) and out.sum() == pytest.approx(0.6 / GESTURE_FULL_LOUDNESS)
    assert np.count_nonzero(out) == GESTURE_SMOOTH_FRAMES
    assert gesture_loudness(np.zeros(0)).shape == (0,)


def test_mechanism_shots_draw_vigour_apart_from_the_actions() -> None:
    """Vigour varies over shots in [0, 1] from its own stream: the phases are those of the schedule
    alone (same seed, same actions), and the default profile has no beats and full-level speech."""
    from dataset.synth.plan import MECHANISM_SPEECH_GAIN, ActionBag, schedule_arm_phases

    plans = [plan_video(3, i, min_duration=28, max_duration=34, resolutions=((320, 180),), profile="mechanism")
             for i in range(6)]
    vigours = [s.vigour for p in plans for s in p.shots]
    assert all(0.0 <= v <= 1.0 for v in vigours) and np.std(vigours) > 0.15
    assert {s.speech_gain for p in plans for s in p.shots} == {MECHANISM_SPEECH_GAIN}
    p = plans[0]
    bag = ActionBag(np.random.default_rng([3, 0, 2]))
    for shot in p.shots:
        assert shot.phases == schedule_arm_phases(np.random.default_rng(shot.seed), p.times_s, shot.start_frame,
                                                  shot.end_frame, bag)
    default = plan_video(3, 0, min_duration=10, max_duration=12, resolutions=RES)
    assert all(s.vigour == 0.0 and s.speech_gain is None for s in default.shots)


def test_speech_gain_scales_sentences_and_keeps_the_words() -> None:
    from dataset.synth.speech import SENTENCES, WordSynth, build_speech

    synth = WordSynth()
    try:
        plain = build_speech(synth, np.random.default_rng(4), 6.0, 16000)
        loud = build_speech(synth, np.random.default_rng(4), 6.0, 16000, gain=(0.3, 1.0),
                            gain_rng=np.random.default_rng(9))
        with pytest.raises(ValueError, match="gain needs its own gain_rng"):
            build_speech(synth, np.random.default_rng(4), 6.0, 16000, gain=(0.3, 1.0))
    finally:
        synth.close()
    assert loud.words == plain.words and loud.text == plain.text
    # every word is the plain word scaled by one level in [0.3, 1]; the words of a sentence share it
    levels = []
    for w in plain.words:
        a, b = int(round(w.start_s * 16000)), int(round(w.end_s * 16000))
        level = float(np.dot(loud.samples[a:b], plain.samples[a:b]) / np.dot(plain.samples[a:b], plain.samples[a:b]))
        assert np.allclose(loud.samples[a:b], plain.samples[a:b] * np.float32(level), atol=1e-5)
        levels.append(round(level, 4))
    assert all(0.3 <= v <= 1.0 for v in levels) and 1 < len(set(levels)) < len(levels)
    assert sum(a != b for a, b in zip(levels, levels[1:])) == len(set(levels)) - 1  # one run per sentence


def test_mechanism_identities_cycle_and_tint_only_the_face() -> None:
    """Each mechanism video's identity is its index modulo the tints (so the last videos differ); a
    tint scales the face photo and nothing else, and the pose reader still finds the head and ears."""
    from annotate.pose import reader_pose
    from dataset.pose import KEYPOINTS

    kw = dict(min_duration=10, max_duration=12, resolutions=RES)
    assert [plan_video(2, i, **kw, profile="mechanism").identity for i in (0, 5, 6, 9)] == [0, 5, 0, 3]
    assert plan_video(2, 1, **kw).identity is None
    renderer = PuppetRenderer()
    h = 180
    neck, scale = (160.0, 120.0), h / 3.4
    pose = rig.pose_at("raise_right_hand", 0.9, 1.8)
    frames = {}
    for identity in (None, 1, 2):
        renderer.set_identity(None if identity is None else rig.FACE_TINTS[identity])
        frame = np.full((h, 320, 3), 104, np.uint8)
        renderer.draw(frame, neck, scale, pose)
        frames[identity] = frame
    changed = np.any(frames[None] != frames[1], axis=-1)
    ys, xs = np.nonzero(changed)
    head = (neck[0] + scale * rig.HEAD_CENTER[0], neck[1] + scale * rig.HEAD_CENTER[1])
    # only inside the head sprite (half its size around the head centre)
    assert np.abs(xs - head[0]).max() <= 0.5 * rig.HEAD_SIZE * scale + 2
    assert np.abs(ys - head[1]).max() <= 0.5 * rig.HEAD_SIZE * scale + 2
    face = (slice(int(head[1]) - 6, int(head[1]) + 6), slice(int(head[0]) - 6, int(head[0]) + 6))
    dark, warm, plain = (frames[k][face].reshape(-1, 3).mean(0) for k in (1, 2, None))
    assert np.all(dark < 0.6 * plain) and warm[0] > plain[0] and warm[2] < plain[2]
    for identity, frame in frames.items():
        kp = reader_pose(frame[None])[0]
        for name in ("nose", "right_ear", "left_ear", "right_wrist", "left_wrist"):
            assert kp[KEYPOINTS.index(name), 2] > 0, (identity, name)
        np.testing.assert_allclose(kp[:, :2], reader_pose(frames[None][None])[0][:, :2], atol=1.5 / h)
