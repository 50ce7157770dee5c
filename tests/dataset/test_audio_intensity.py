"""Audio intensity per video frame on constructed signals (exact answers known)."""

from __future__ import annotations

import numpy as np
import pytest

from dataset.audio_intensity import FLOOR_DB, LOUD_DB, QUIET_DB, SAMPLES_PER_FRAME, audio_intensity, frame_rms

RATE = 16000


def tone(freq: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_loudness_of_a_sine_is_its_rms_in_dbfs_and_silence_is_the_floor():
    audio = np.concatenate([tone(440, 1.0, 0.5), np.zeros(RATE, np.float32)])
    result = audio_intensity(audio, 50)
    assert result.loudness_db.shape == result.intensity.shape == result.pitch_hz.shape == (50,)
    expected = 20 * np.log10(0.5 / np.sqrt(2))  # -9.03 dBFS
    np.testing.assert_allclose(result.loudness_db[:25], expected, atol=0.05)
    assert np.all(result.loudness_db[25:] == FLOOR_DB) and np.all(result.intensity[25:] == 0)
    assert np.all(result.intensity[:25] == 1.0)  # above LOUD_DB


def test_intensity_is_linear_in_db_between_quiet_and_loud_and_monotone_in_amplitude():
    amplitudes = np.geomspace(1e-4, 0.9, 12)
    audio = np.concatenate([tone(200, 0.2, a) for a in amplitudes])
    result = audio_intensity(audio, 60, pitch=False)
    per_step = result.intensity.reshape(12, 5).mean(axis=1)
    assert np.all(np.diff(per_step) >= 0) and per_step[0] == 0 and per_step[-1] == 1
    db = result.loudness_db.reshape(12, 5).mean(axis=1)
    inside = (db > QUIET_DB) & (db < LOUD_DB)
    np.testing.assert_allclose(per_step[inside], (db[inside] - QUIET_DB) / (LOUD_DB - QUIET_DB), atol=1e-5)


@pytest.mark.parametrize("freq", [85.0, 120.0, 220.0, 310.0])
def test_pitch_of_a_voice_like_signal(freq):
    # a sawtooth-like sum of harmonics (rich like a glottal source), 0.4 s
    t = np.arange(int(0.4 * RATE)) / RATE
    audio = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 8)) * 0.2
    pitch = audio_intensity(audio, 10).pitch_hz
    np.testing.assert_allclose(pitch[1:-1], freq, rtol=0.01)


def test_noise_and_quiet_frames_are_unvoiced():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.2, RATE).astype(np.float32)
    assert np.all(audio_intensity(noise, 25).pitch_hz == 0)
    quiet = tone(150, 1.0, 1e-3)  # -63 dBFS: below the voicing intensity
    assert np.all(audio_intensity(quiet, 25).pitch_hz == 0)


def test_frames_follow_the_video_timeline_and_pad_or_cut():
    audio = np.zeros(3 * SAMPLES_PER_FRAME + 100, np.float32)
    audio[SAMPLES_PER_FRAME : 2 * SAMPLES_PER_FRAME] = 1.0  # frame 1 only
    rms = frame_rms(audio, 5)
    np.testing.assert_allclose(rms, [0, 1, 0, 100 / SAMPLES_PER_FRAME * 0, 0], atol=1e-12)
    assert frame_rms(audio, 2).shape == (2,)
