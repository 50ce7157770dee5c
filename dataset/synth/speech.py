"""Speech from espeak-ng with exact word timings, and the mouth-opening envelope it drives.

Exact by construction: every word is synthesised on its own (`espeak-ng -v VOICE -s RATE -w
OUT.wav WORD`), its leading and trailing silence trimmed, resampled to the video's audio rate and
placed at a chosen sample offset with chosen gaps. A word's start and end are therefore sample
positions we wrote, not estimates. espeak-ng is deterministic for the same text, voice and rate.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

ESPEAK_RATE = 22050  # espeak-ng's output sample rate
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+f2", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+m3")
RATES = (135, 150, 165, 180)
SENTENCES = (
    "Hello and welcome to this short update.",
    "Today we look at how the new model handles phases.",
    "Please raise your hand if you have a question.",
    "The weather in the mountains was cold but clear.",
    "We trained the system on many hours of video.",
    "Let me show you what happens next.",
    "This is the most important part of the talk.",
    "Every clip has a base caption and a few phases.",
    "Thank you all for coming here this morning.",
    "The results look promising so far.",
    "I would like to point out one small detail.",
    "Our team met every week to review progress.",
    "Numbers alone do not tell the whole story.",
    "Keep an eye on the timing of each gesture.",
    "She said that the library opens at nine.",
    "A quiet room makes recording much easier.",
    "We will come back to this question later.",
    "The camera stays still while the speaker moves.",
    "Good data matters more than clever tricks.",
    "Now let us move on to the next topic.",
    "Simple tests catch a surprising number of bugs.",
    "The audio and the video must stay in sync.",
    "Nobody expected the demo to work the first time.",
    "Try to speak clearly and not too fast.",
)
_TRIM_LEVEL = 0.02  # of the word's peak: quieter samples at either end count as silence
_PEAK = 0.55


class SpeechError(RuntimeError):
    """espeak-ng is missing or failed; the message says what to install or what went wrong."""


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class SpeechTrack:
    """Speech of one shot: mono float32 samples at `sample_rate`, text and shot-relative words."""

    samples: np.ndarray
    sample_rate: int
    voice: str
    rate_wpm: int
    text: str
    words: tuple[Word, ...]


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    from scipy.signal import resample_poly

    g = gcd(src, dst)
    return resample_poly(x, dst // g, src // g).astype(np.float32)


class WordSynth:
    """Synthesises single words with espeak-ng, cached per (word, voice, rate, sample rate)."""

    def __init__(self) -> None:
        self._exe = shutil.which("espeak-ng")
        if self._exe is None:
            raise SpeechError("espeak-ng not found on PATH; install it (Debian/Ubuntu: apt-get install espeak-ng)")
        self._tmp = tempfile.TemporaryDirectory(prefix="actavatar-espeak-")
        self._cache: dict[tuple[str, str, int, int], np.ndarray] = {}

    def word(self, word: str, voice: str, rate: int, sample_rate: int) -> np.ndarray:
        key = (word, voice, rate, sample_rate)
        if key not in self._cache:
            self._cache[key] = self._synth(word, voice, rate, sample_rate)
        return self._cache[key]

    def _synth(self, word: str, voice: str, rate: int, sample_rate: int) -> np.ndarray:
        out = Path(self._tmp.name) / "word.wav"
        cmd = [self._exe, "-v", voice, "-s", str(rate), "-w", str(out), word]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise SpeechError(f"espeak-ng failed for {word!r} (voice {voice}): {proc.stderr.strip()}")
        with wave.open(str(out), "rb") as wav:
            raw = wav.readframes(wav.getnframes())
            src_rate = wav.getframerate()
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        loud = np.flatnonzero(np.abs(x) > _TRIM_LEVEL * max(float(np.abs(x).max()), 1e-6))
        if loud.size == 0:
            raise SpeechError(f"espeak-ng produced silence for {word!r} (voice {voice})")
        x = x[loud[0]:loud[-1] + 1]
        x = _resample(x, src_rate, sample_rate) if src_rate != sample_rate else x
        return (x * (_PEAK / max(float(np.abs(x).max()), 1e-6))).astype(np.float32)

    def close(self) -> None:
        self._tmp.cleanup()


def build_speech(synth: WordSynth, rng: np.random.Generator, duration_s: float, sample_rate: int,
                 *, lead_s: float = 0.45, tail_s: float = 0.5, gain: tuple[float, float] | None = None,
                 gain_rng: np.random.Generator | None = None) -> SpeechTrack:
    """Fill a shot of `duration_s` with sentences from the bank, word by word, with exact timings.

    Speech starts after `lead_s` and ends at least `tail_s` before the shot ends (so fades and
    cuts never clip a word). Stops at the first word that would not fit. With `gain` = (low, high)
    each sentence is scaled by its own level drawn from `gain_rng` (loud and quiet passages); the
    words and their timings are those of the same `rng` without it.
    """
    if gain is not None and gain_rng is None:
        raise ValueError("build_speech: gain needs its own gain_rng (the word stream must not change)")
    voice = str(rng.choice(VOICES))
    rate = int(rng.choice(RATES))
    total = int(round(duration_s * sample_rate))
    out = np.zeros(total, np.float32)
    limit = total - int(tail_s * sample_rate)
    cursor = int(rng.uniform(lead_s, lead_s + 0.3) * sample_rate)
    tokens: list[str] = []
    words: list[Word] = []
    full = True
    for sentence in rng.permutation(len(SENTENCES)):
        level = float(gain_rng.uniform(*gain)) if gain is not None else 1.0
        for token in SENTENCES[int(sentence)].split():
            clean = "".join(ch for ch in token.lower() if ch.isalpha() or ch == "'")
            clip = synth.word(clean, voice, rate, sample_rate)
            if cursor + clip.size > limit:
                full = False
                break
            out[cursor:cursor + clip.size] = clip if level == 1.0 else clip * np.float32(level)
            words.append(Word(clean, cursor / sample_rate, (cursor + clip.size) / sample_rate))
            tokens.append(token)
            cursor += clip.size + int(rng.uniform(0.05, 0.13) * sample_rate)
        if not full:
            break
        cursor += int(rng.uniform(0.3, 0.6) * sample_rate)
    return SpeechTrack(out, sample_rate, voice, rate, " ".join(tokens), tuple(words))


def mouth_envelope(samples: np.ndarray, sample_rate: int, frame_times_s: np.ndarray, duration_s: float) -> np.ndarray:
    """Mouth opening in [0, 1] per frame: RMS of the speech over each frame's display interval."""
    edges = np.append(frame_times_s, duration_s)
    idx = np.clip(np.round(edges * sample_rate).astype(np.int64), 0, samples.size)
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    n = np.maximum(idx[1:] - idx[:-1], 1)
    rms = np.sqrt((energy[idx[1:]] - energy[idx[:-1]]) / n)
    return np.clip(rms / 0.16, 0.0, 1.0) ** 0.7
