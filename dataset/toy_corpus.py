"""Small valid corpora built from rendered clips, for tests, benchmarks and the demo.

Each clip is a moving colour pattern with a tone whose pitch follows the phases, plus an
annotation that satisfies schema v1 (transcript and caption included, with words and phases laid
out on the clip's timeline). It exercises the shard I/O with real H.264/AAC media; the realistic
talking-avatar corpus with ground truth is the synthetic generator's job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from dataset.media import encode_mp4, encode_wav
from dataset.schema import AUDIO_SAMPLE_RATE, SCHEMA_VERSION, VIDEO_FPS
from dataset.writer import ShardWriter, ShardWriterConfig

_WORDS = "hello there this clip shows a person who raises a hand and then nods while talking".split()
_ACTIONS = ("raises the right hand", "waves with the left hand", "nods while smiling", "tilts the head")


def toy_clip(index: int, *, seconds: float = 2.0, width: int = 64, height: int = 64, seed: int = 0) -> dict[str, Any]:
    """One sample dict ready for `ShardWriter.write` (deterministic for `index` and `seed`)."""
    rng = np.random.default_rng([seed, index])
    num_frames = int(round(seconds * VIDEO_FPS))
    duration = num_frames / VIDEO_FPS
    num_samples = int(round(duration * AUDIO_SAMPLE_RATE))
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.integers(0, 255, size=3)
    t = np.arange(num_frames)[:, None, None, None]
    frames = ((base + 3 * (xx + yy)[None, ..., None] + 4 * t) % 256).astype(np.uint8)
    # Phases of at least 0.5 s (the default minimum), between 1 and 3 of them.
    n_phases = max(1, min(int(rng.integers(1, 4)), int(duration // 0.5)))
    bounds = np.linspace(0.0, duration, n_phases + 1)
    phases = [
        {"start_s": round(float(a), 3), "end_s": round(float(b), 3), "text": str(rng.choice(_ACTIONS))}
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    time = np.arange(num_samples) / AUDIO_SAMPLE_RATE
    pitch = 220.0 * (1 + np.searchsorted(bounds[1:-1], time))
    audio = (0.2 * np.sin(2 * np.pi * pitch * time)).astype(np.float32)
    n_words = int(rng.integers(2, 7))
    edges = np.linspace(0.1, duration - 0.1, n_words + 1)
    words = [
        {"word": str(rng.choice(_WORDS)), "start_s": round(float(a), 3), "end_s": round(float(b) - 0.02, 3), "score": 0.9}
        for a, b in zip(edges[:-1], edges[1:])
    ]
    source_bytes = f"toy-source-{seed}-{index}".encode()
    sha = hashlib.sha256(source_bytes).hexdigest()
    key = f"{sha[:16]}_{0:04d}"
    annotation = {
        "schema_version": SCHEMA_VERSION,
        "key": key,
        "source": {"uri": f"toy://{seed}/{index}.mp4", "sha256": sha, "start_s": 0.0, "end_s": duration},
        "video": {"fps": VIDEO_FPS, "num_frames": num_frames, "width": width, "height": height, "duration_s": duration},
        "audio": {"sample_rate": AUDIO_SAMPLE_RATE, "num_samples": num_samples, "speech_ratio": 0.8},
        "face": {"detected_ratio": 1.0, "max_faces": 1, "bbox": [0.3, 0.2, 0.7, 0.6]},
        "transcript": {"language": "en", "text": " ".join(w["word"] for w in words), "words": words},
        "caption": {"base": "A colour pattern drifts diagonally while a tone plays.", "phases": phases},
        "provenance": {"pipeline_version": "toy-1", "config_hash": "", "models": {}},
    }
    return {
        "__key__": key,
        "json": annotation,
        "mp4": encode_mp4(frames, audio),
        "wav": encode_wav(audio),
    }


def write_toy_corpus(
    out_dir: str | Path,
    num_clips: int,
    *,
    num_rejected: int = 0,
    seconds: float = 2.0,
    size: int = 64,
    seed: int = 0,
    max_samples: int = 4,
    overwrite: bool = True,
) -> list[str]:
    """Write `num_clips` toy clips (plus `num_rejected` rejected manifest rows); returns shard names."""
    cfg = ShardWriterConfig(max_samples=max_samples)
    with ShardWriter(out_dir, cfg, overwrite=overwrite) as writer:
        for i in range(num_clips):
            writer.write(toy_clip(i, seconds=seconds, width=size, height=size, seed=seed))
        for j in range(num_rejected):
            sha = hashlib.sha256(f"toy-rejected-{seed}-{j}".encode()).hexdigest()
            writer.add_row(
                {"key": f"{sha[:16]}_0000", "source_uri": f"toy://{seed}/rejected-{j}.mp4", "source_sha256": sha,
                 "status": "rejected", "stage": "face", "reason": "no_face" if j % 2 == 0 else "too_short"}
            )
    return writer.shards_written
