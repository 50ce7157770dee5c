"""Audio intensity per video frame (ApoAvatar's prosodic intensity): the toolkit's one definition.

For 16 kHz mono audio and the 25 fps video timeline (640 samples per frame):

    loudness_db[t]  RMS level of frame t's 640 samples in dBFS (a full-scale sine is -3 dB),
                    floored at FLOOR_DB (digital silence)
    intensity[t]    loudness mapped linearly from [QUIET_DB, LOUD_DB] to [0, 1] and clipped: an
                    absolute scale (not normalised per clip), so a quiet clip stays quiet and
                    intensities compare across clips and speakers recorded at similar gain
    pitch_hz[t]     fundamental frequency from the normalised autocorrelation of a 40 ms window
                    centred on the frame (50–500 Hz), 0 where the frame is unvoiced (periodicity
                    below VOICED_PERIODICITY or intensity below VOICED_INTENSITY)

Written with numpy rather than taken from a library: librosa is not in our stack, torchaudio's
`detect_pitch_frequency` gives no voicing decision, and these three lines of arithmetic are the
definition the training data, the sampler and the benchmark must share exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataset.schema import AUDIO_SAMPLE_RATE, VIDEO_FPS

SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE // int(VIDEO_FPS)
FLOOR_DB = -80.0
QUIET_DB = -60.0  # intensity 0 at and below (room noise, breaths)
LOUD_DB = -10.0  # intensity 1 at and above (shouting near clipping)
PITCH_RANGE_HZ = (50.0, 500.0)
PITCH_WINDOW = 640  # 40 ms: two periods of a 50 Hz voice
VOICED_PERIODICITY = 0.5
VOICED_INTENSITY = 0.1
# What a trained audio–pose refocusing branch reads (its conditioning.json records it): change it
# when the definition of `intensity` changes.
INTENSITY_DEFINITION = f"dataset.audio_intensity v1: per 25 fps frame, RMS dBFS of 16 kHz audio mapped [{QUIET_DB}, {LOUD_DB}] -> [0, 1]"


@dataclass(frozen=True, slots=True)
class AudioIntensity:
    """Per-frame arrays, each of length `num_frames` (float32)."""

    loudness_db: np.ndarray
    intensity: np.ndarray
    pitch_hz: np.ndarray


def frame_rms(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """RMS of each video frame's samples (zero-padded or cut to `num_frames` frames)."""
    samples = np.zeros(num_frames * SAMPLES_PER_FRAME, np.float64)
    audio = np.asarray(audio, np.float64).reshape(-1)[: samples.size]
    samples[: audio.size] = audio
    return np.sqrt((samples.reshape(num_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def loudness_db(audio: np.ndarray, num_frames: int) -> np.ndarray:
    rms = frame_rms(audio, num_frames)
    return np.maximum(20 * np.log10(np.maximum(rms, 1e-12)), FLOOR_DB)


def intensity_from_db(db: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(db) - QUIET_DB) / (LOUD_DB - QUIET_DB), 0.0, 1.0)


def frame_pitch(audio: np.ndarray, num_frames: int, voiced: np.ndarray | None = None) -> np.ndarray:
    """F0 per frame in Hz (0 = unvoiced), by normalised autocorrelation with parabolic refinement."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    lo, hi = (int(AUDIO_SAMPLE_RATE / f) for f in PITCH_RANGE_HZ[::-1])  # lag range in samples
    half = PITCH_WINDOW // 2
    padded = np.pad(audio, (half, half + hi + num_frames * SAMPLES_PER_FRAME))
    out = np.zeros(num_frames)
    for t in range(num_frames):
        if voiced is not None and not voiced[t]:
            continue
        centre = t * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2 + half
        window = padded[centre - half : centre + half]
        window = window - window.mean()
        energy = window @ window
        if energy <= 1e-10:
            continue
        # r[lag] = <x[n], x[n + lag]> / sqrt(|x|^2 |x_lag|^2): 1 for a perfectly periodic window
        shifted = np.lib.stride_tricks.sliding_window_view(padded[centre - half : centre + half + hi + 1], PITCH_WINDOW)[lo : hi + 1]
        shifted = shifted - shifted.mean(axis=1, keepdims=True)
        r = shifted @ window / np.sqrt(energy * np.maximum((shifted**2).sum(axis=1), 1e-12))
        if r.max() < VOICED_PERIODICITY:
            continue
        # The period, not a multiple of it (r is as high at 2T, 3T…): the first local peak close to the best.
        peaks = np.flatnonzero((r[1:-1] >= r[:-2]) & (r[1:-1] >= r[2:]) & (r[1:-1] >= 0.9 * r.max())) + 1
        best = int(peaks[0]) if peaks.size else int(np.argmax(r))
        shift = 0.0
        if 0 < best < len(r) - 1:  # parabolic peak interpolation: sub-sample lag
            a, b, c = r[best - 1], r[best], r[best + 1]
            shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
        out[t] = AUDIO_SAMPLE_RATE / (lo + best + shift)
    return out


def frame_intensity(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """(num_frames,) float32 intensity alone (no pitch): what training windows and the sampler feed
    `model.refocus`."""
    return intensity_from_db(loudness_db(audio, num_frames)).astype(np.float32)


def audio_intensity(audio: np.ndarray, num_frames: int, *, pitch: bool = True) -> AudioIntensity:
    """Loudness, intensity and (unless `pitch=False`) pitch of each of `num_frames` video frames."""
    db = loudness_db(audio, num_frames)
    level = intensity_from_db(db)
    f0 = frame_pitch(audio, num_frames, voiced=level >= VOICED_INTENSITY) if pitch else np.zeros(num_frames)
    return AudioIntensity(db.astype(np.float32), level.astype(np.float32), f0.astype(np.float32))
