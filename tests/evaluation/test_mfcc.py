"""MFCC matches python_speech_features (the library syncnet_python calls)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.mfcc import mfcc


def _audio(n: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / 16000
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.normal(size=n)).astype(np.float32)


def test_rate_and_frame_count_follow_the_framing_rule():
    for n in (640 * 25, 640 * 25 + 77, 300):
        feats = mfcc(_audio(n))
        expected = 1 if n <= 400 else 1 + math.ceil((n - 400) / 160)
        assert feats.shape == (expected, 13)
    assert np.isfinite(mfcc(np.zeros(1600, np.float32))).all()  # silence: eps floors, no -inf


def test_float_input_is_scaled_like_int16_wav():
    a = _audio(8000)
    i16 = np.round(a * 32768).astype(np.int16)
    np.testing.assert_allclose(mfcc(a), mfcc(i16), atol=1e-2)  # int16 rounding only


def test_matches_python_speech_features():
    psf = pytest.importorskip("python_speech_features")
    a = _audio(16000 + 123, seed=1)
    ref = psf.mfcc(a.astype(np.float64) * 32768.0, 16000)
    np.testing.assert_allclose(mfcc(a), ref, rtol=1e-10, atol=1e-10)
