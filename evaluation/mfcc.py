"""13-dim MFCC at 100 Hz, numerically the same as `python_speech_features.mfcc` with its defaults.

syncnet_python computes `python_speech_features.mfcc(audio, 16000)` on the int16 samples read by
`scipy.io.wavfile`, so the scale matters (coefficient 0 is the log frame energy): float audio in
[-1, 1] is multiplied by 32768 first. Defaults: 25 ms rectangular windows every 10 ms, pre-emphasis
0.97, 512-point FFT power spectrum, 26 mel filters from 0 Hz to Nyquist, log, orthonormal DCT-II,
13 coefficients, lifter 22, c0 replaced by log frame energy.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import scipy.fft

INT16_SCALE = 32768.0  # decode_wav divides PCM16 by this; undo it so features match the int16 pipeline


def _round_half_up(x: float) -> int:
    return int(Decimal(x).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(nfilt: int, nfft: int, sample_rate: int, low_hz: float = 0.0, high_hz: float | None = None) -> np.ndarray:
    """(nfilt, nfft//2+1) triangular filters on FFT bins, placed as python_speech_features places them."""
    high_hz = high_hz or sample_rate / 2
    mel = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), nfilt + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mel) / sample_rate)
    fb = np.zeros((nfilt, nfft // 2 + 1))
    idx = np.arange(nfft // 2 + 1)
    for j in range(nfilt):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        rising = (idx >= lo) & (idx < mid)
        falling = (idx >= mid) & (idx < hi)
        fb[j, rising] = (idx[rising] - lo) / (mid - lo)
        fb[j, falling] = (hi - idx[falling]) / (hi - mid)
    return fb


def frame_signal(signal: np.ndarray, frame_len: int, frame_step: int) -> np.ndarray:
    """(num_frames, frame_len); the tail is zero-padded so every sample is covered (1 + ceil(...))."""
    n = len(signal)
    num = 1 if n <= frame_len else 1 + math.ceil((n - frame_len) / frame_step)
    padded = np.concatenate([signal, np.zeros((num - 1) * frame_step + frame_len - n)])
    index = np.arange(frame_len)[None, :] + frame_step * np.arange(num)[:, None]
    return padded[index]


def mfcc(
    audio: np.ndarray,
    sample_rate: int = 16000,
    *,
    int16_scale: bool = True,
    winlen: float = 0.025,
    winstep: float = 0.01,
    numcep: int = 13,
    nfilt: int = 26,
    nfft: int = 512,
    preemph: float = 0.97,
    ceplifter: int = 22,
) -> np.ndarray:
    """Mono audio -> (num_frames, numcep) MFCC, one row per 10 ms.

    Args:
        audio: float samples in [-1, 1] (scaled by 32768 when `int16_scale`) or raw int16 values.
        int16_scale: multiply float input by 32768 to match syncnet_python's int16 WAV input.
    """
    x = np.asarray(audio)
    if x.ndim != 1:
        raise ValueError(f"audio must be mono (1-D), got shape {x.shape}")
    x = x.astype(np.float64) * (INT16_SCALE if int16_scale and np.issubdtype(np.asarray(audio).dtype, np.floating) else 1.0)
    x = np.append(x[0], x[1:] - preemph * x[:-1])
    frames = frame_signal(x, _round_half_up(winlen * sample_rate), _round_half_up(winstep * sample_rate))
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    eps = np.finfo(float).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    feat = power @ mel_filterbank(nfilt, nfft, sample_rate).T
    feat = np.where(feat == 0, eps, feat)
    cep = scipy.fft.dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :numcep]
    if ceplifter > 0:
        cep = cep * (1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter))
    cep[:, 0] = np.log(energy)
    return cep
