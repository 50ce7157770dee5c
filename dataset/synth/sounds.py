"""Non-speech sound for negative shots: music-like tone sequences and quiet room ambience."""

from __future__ import annotations

import numpy as np

# A pentatonic scale (Hz): any sequence of its notes sounds consonant.
_SCALE = (220.0, 247.5, 277.2, 330.0, 370.0, 440.0, 495.0, 554.4, 660.0)


def music(rng: np.random.Generator, duration_s: float, sample_rate: int) -> np.ndarray:
    """Notes with harmonics and a decay envelope over a steady bass: tonal, rhythmic, not speech."""
    n = int(round(duration_s * sample_rate))
    out = np.zeros(n, np.float32)
    beat = rng.uniform(0.22, 0.4)
    t0 = 0.0
    while t0 < duration_s:
        length = beat * int(rng.integers(1, 3))
        start, stop = int(t0 * sample_rate), min(n, int((t0 + length) * sample_rate))
        t = np.arange(stop - start, dtype=np.float32) / sample_rate
        freq = float(rng.choice(_SCALE))
        tone = sum(np.sin(2 * np.pi * freq * k * t) / k for k in (1, 2, 3))
        out[start:stop] += 0.18 * tone * np.exp(-3.5 * t / length) * np.minimum(1.0, t / 0.01)
        t0 += length
    t = np.arange(n, dtype=np.float32) / sample_rate
    out += 0.08 * np.sin(2 * np.pi * float(rng.choice(_SCALE)) / 2 * t)
    return np.clip(out, -0.95, 0.95).astype(np.float32)


def ambience(rng: np.random.Generator, duration_s: float, sample_rate: int, level: float = 0.01) -> np.ndarray:
    """Low-passed noise at a low level: a room without a speaker."""
    n = int(round(duration_s * sample_rate))
    noise = rng.standard_normal(n).astype(np.float32)
    kernel = np.ones(8, np.float32) / 8.0  # crude low-pass: rooms hum, they do not hiss
    return (level * np.convolve(noise, kernel, mode="same")).astype(np.float32)
