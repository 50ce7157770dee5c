"""Render a planned raw video: audio first (speech drives the mouth), then frames streamed to the encoder."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from dataset.synth import rig, scenes, sounds
from dataset.synth.avatar import PuppetRenderer
from dataset.synth.plan import ShotPlan, VideoPlan
from dataset.synth.speech import SpeechTrack, WordSynth, build_speech, mouth_envelope
from dataset.synth.video_writer import RawVideoWriter

_SINGLE_SCALE = 1.0 / 2.66  # shoulder width / frame height that fits raised hands and resting gloves
_TWO_SCALE = 0.9 * _SINGLE_SCALE
# Mechanism profile: the clips are cut to 64 px squares of the full frame height, so leave a margin
# round every reach (raised gloves, the waving hand at 1.5 W); draw gloves bigger (at 64 px a glove
# of the default size loses its colour to 4:2:0 chroma and H.264) and arms thick and light (a thin
# grey sleeve on a grey wall is the last thing a small VAE learns to reconstruct, so the pose would
# be lost before the DiT ever sees it; dark sleeves would not do: glove chroma bleeding into dark
# pixels reads as highly saturated glove and drags the reader's glove centroids along the arm).
_MECHANISM_SCALE = 1.0 / 3.4
GESTURE_SMOOTH_FRAMES = 9  # 0.36 s at 25 fps
GESTURE_FULL_LOUDNESS = 0.6  # smoothed mouth envelope of a loud passage: full beat
MECHANISM_LOOK = {"glove_scale": 2.0, "point_glove_scale": 1.0, "arm_scale": 1.8, "sleeve_rgb": (222, 222, 228)}


def mechanism_reach(margin: float = 0.12) -> tuple[float, float]:
    """(above, below) the neck in W units that a mechanism-profile puppet can reach, gloves included."""
    extra = (MECHANISM_LOOK["glove_scale"] - 1.0) * rig.GLOVE_RADIUS  # TOP/BOTTOM_EXTENT hold a default glove
    return rig.TOP_EXTENT + extra + margin, rig.BOTTOM_EXTENT + extra + margin


@dataclass(frozen=True, slots=True)
class ShotAudio:
    """A shot's soundtrack (video sample rate) and the speech in it, if any."""

    samples: np.ndarray
    kind: str  # "speech", "silence", "music" or "ambience"
    speech: SpeechTrack | None


def _sample_edges(plan: VideoPlan) -> list[tuple[int, int]]:
    times = plan.times_s
    return [(int(round(times[s.start_frame] * plan.sample_rate)), int(round(times[s.end_frame] * plan.sample_rate)))
            for s in plan.shots]


def shot_audio(shot: ShotPlan, n_samples: int, sample_rate: int, synth: WordSynth) -> ShotAudio:
    """Sound of one shot; deterministic from the shot seed."""
    rng = np.random.default_rng([shot.seed, 1])
    seconds = n_samples / sample_rate
    if shot.kind in ("talk", "two_avatars"):
        speech = build_speech(synth, rng, seconds, sample_rate, gain=shot.speech_gain,
                              gain_rng=np.random.default_rng([shot.seed, 3]) if shot.speech_gain else None)
        room = sounds.ambience(rng, seconds, sample_rate, level=0.004)
        return ShotAudio(speech.samples[:n_samples] + room[:n_samples], "speech", speech)
    if shot.kind == "music":
        return ShotAudio(sounds.music(rng, seconds, sample_rate)[:n_samples], "music", None)
    if shot.kind == "scene":
        return ShotAudio(sounds.ambience(rng, seconds, sample_rate)[:n_samples], "ambience", None)
    return ShotAudio(np.zeros(n_samples, np.float32), "silence", None)


def _layout(shot: ShotPlan, width: int, height: int, rng: np.random.Generator,
            profile: str = "default") -> list[tuple[float, float, float]]:
    """(neck x, neck y, shoulder width) in pixels for each puppet of the shot."""
    if shot.num_avatars == 0:
        return []
    if profile == "mechanism":  # centred with a margin on every side (see _MECHANISM_SCALE)
        scale = _MECHANISM_SCALE * height * rng.uniform(0.97, 1.0)
        reach_up, reach_down = mechanism_reach()
        y = (height - (reach_up + reach_down) * scale) / 2 + reach_up * scale
        return [(width / 2 + rng.uniform(-0.3, 0.3) * scale, y, scale)]
    if shot.num_avatars == 2:
        scale = _TWO_SCALE * height
        y = height * 0.02 + rig.TOP_EXTENT * scale + rng.uniform(0, 0.04) * height
        return [(width * 0.28, y, scale), (width * 0.72, y, scale)]
    scale = _SINGLE_SCALE * height * rng.uniform(0.9, 1.0)
    free_y = height - (rig.TOP_EXTENT + rig.BOTTOM_EXTENT) * scale - 0.03 * height
    y = 0.015 * height + rig.TOP_EXTENT * scale + rng.uniform(0.0, max(0.0, free_y))
    free_x = max(0.0, width / 2 - 1.5 * scale)
    return [(width / 2 + rng.uniform(-0.6, 0.6) * free_x, y, scale)]


def _fade_gains(plan: VideoPlan) -> np.ndarray:
    """Per-frame brightness: 1, except ramps to and from black around the fade."""
    gains = np.ones(plan.num_frames, np.float32)
    for shot in plan.shots:
        if shot.fade_out:
            n = shot.fade_out
            gains[shot.end_frame - n:shot.end_frame] = (n - np.arange(n) - 0.5) / n
        if shot.fade_in:
            n = shot.fade_in
            gains[shot.start_frame:shot.start_frame + n] = (np.arange(n) + 0.5) / n
    return gains


def _audio_with_fades(plan: VideoPlan, audios: list[ShotAudio]) -> np.ndarray:
    track = np.concatenate([a.samples for a in audios]).astype(np.float32)
    times = plan.times_s
    for shot in plan.shots:
        for count, first, rising in ((shot.fade_in, shot.start_frame, True), (shot.fade_out, shot.end_frame - shot.fade_out, False)):
            if count:
                a = int(round(times[first] * plan.sample_rate))
                b = int(round(times[first + count] * plan.sample_rate))
                ramp = np.linspace(0.0, 1.0, b - a, dtype=np.float32)
                track[a:b] *= ramp if rising else ramp[::-1]
    return np.clip(track, -1.0, 1.0)


def gesture_loudness(mouth: np.ndarray, frames: int = GESTURE_SMOOTH_FRAMES) -> np.ndarray:
    """Per-frame loudness (0..1) the beat gestures follow: the mouth envelope (speech RMS per frame)
    averaged over `frames` frames, so a gesture swells with a loud passage rather than a syllable,
    relative to GESTURE_FULL_LOUDNESS."""
    if mouth.size == 0:
        return mouth.astype(np.float64)
    kernel = np.ones(frames) / frames
    padded = np.pad(mouth.astype(np.float64), (frames // 2, frames - 1 - frames // 2), mode="edge")
    return np.clip(np.convolve(padded, kernel, mode="valid") / GESTURE_FULL_LOUDNESS, 0.0, 1.0)


def _phase_index(shot: ShotPlan) -> np.ndarray:
    """Frame -> index of the phase covering it (frames of the shot only)."""
    idx = np.zeros(shot.end_frame - shot.start_frame, np.int64)
    for k, phase in enumerate(shot.phases):
        idx[phase.start_frame - shot.start_frame:phase.end_frame - shot.start_frame] = k
    return idx


def render_video(plan: VideoPlan, out: BinaryIO | str | Path, renderer: PuppetRenderer, synth: WordSynth,
                 *, crf: int = 21, preset: str = "superfast") -> list[ShotAudio]:
    """Encode the video of `plan` into `out`; returns each shot's audio facts for the truth record."""
    times = plan.times_s
    audios = [shot_audio(s, b - a, plan.sample_rate, synth) for s, (a, b) in zip(plan.shots, _sample_edges(plan))]
    gains = _fade_gains(plan)
    writer = RawVideoWriter(out, width=plan.width, height=plan.height, time_base=plan.time_base, rate=plan.rate,
                            sample_rate=plan.sample_rate, crf=crf, preset=preset)
    try:
        for shot, audio in zip(plan.shots, audios):
            rng = np.random.default_rng([shot.seed, 2])
            shot_t0 = times[shot.start_frame]
            local = times[shot.start_frame:shot.end_frame + 1] - shot_t0
            mouth = (mouth_envelope(audio.speech.samples, plan.sample_rate, local[:-1], local[-1])
                     if audio.speech is not None else np.zeros(local.size - 1))
            loudness = gesture_loudness(mouth) if shot.vigour > 0 else None
            puppets = _layout(shot, plan.width, plan.height, rng, plan.profile)
            look = MECHANISM_LOOK if plan.profile == "mechanism" else {}
            renderer.set_identity(None if plan.identity is None else rig.FACE_TINTS[plan.identity])
            sway = rng.uniform(0, 2 * math.pi, size=2)
            if shot.kind == "scene":
                pan = scenes.PanningScene(shot.scene_image or scenes.SCENE_IMAGES[0], plan.height, plan.width, rng)
            elif shot.plain_grey is not None:
                background = np.full((plan.height, plan.width, 3), shot.plain_grey, np.uint8)
            else:
                background = scenes.studio_background(rng, plan.height, plan.width)
            phase_of = _phase_index(shot)
            for i, frame_index in enumerate(range(shot.start_frame, shot.end_frame)):
                # Sample motion at the middle of the frame's display interval (see rig.pose_at).
                t_mid = 0.5 * (local[i] + local[i + 1])
                if shot.kind == "scene":
                    frame = pan.frame(t_mid / max(local[-1], 1e-6))
                else:
                    frame = background.copy()
                    phase = shot.phases[int(phase_of[i])]
                    p_t0 = times[phase.start_frame] - shot_t0
                    p_len = times[phase.end_frame] - times[phase.start_frame]
                    beat = 0.0 if loudness is None else rig.beat_offset(shot.vigour, float(loudness[i]), t_mid)
                    for k, (x, y, scale) in enumerate(puppets):
                        # Only the first puppet speaks; both perform the shot's phases.
                        pose = rig.pose_at(phase.label, t_mid - p_t0, p_len, tilt_sign=phase.tilt_sign,
                                           mouth=float(mouth[i]) if k == 0 else 0.0, beat=beat)
                        dx = 0.012 * scale * math.sin(2 * math.pi * 0.23 * t_mid + sway[0])
                        dy = 0.006 * scale * math.sin(2 * math.pi * 0.31 * t_mid + sway[1])
                        renderer.draw(frame, (x + dx, y + dy), scale, pose, **look)
                if gains[frame_index] < 1.0:
                    frame = (frame.astype(np.float32) * gains[frame_index] + 0.5).astype(np.uint8)
                writer.write(frame, int(plan.pts[frame_index]))
        writer.finish(_audio_with_fades(plan, audios))
    finally:
        writer.close()
    return audios
