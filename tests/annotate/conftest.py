"""Fixtures shared by the annotate tests: the tiny offline ASR models, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The ASR stage must never need the network; make any hub look-up fail loudly instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")


@pytest.fixture(scope="session")
def tiny_asr_dir(tmp_path_factory) -> Path:
    """`actavatar models tiny --only whisper,aligner`: OUT/whisper, OUT/aligner, OUT/nltk_data."""
    pytest.importorskip("whisperx")
    from actavatar.models_cli import main

    out = tmp_path_factory.mktemp("tiny_asr")
    assert main(["tiny", "--out", str(out), "--only", "whisper,aligner"]) == 0
    return out


def asr_overrides(models: Path) -> list[str]:
    """Config overrides pointing the ASR stage at the tiny models."""
    return [f"asr.model={models / 'whisper'}", f"asr.align_models.en={models / 'aligner'}",
            f"asr.nltk_data={models / 'nltk_data'}"]


def write_toy_clips(folder: Path, count: int, seconds: float = 3.0) -> dict[str, list]:
    """A caption-stage batch of `count` toy clips (mp4 files + annotations) in `folder`."""
    from dataset.toy_corpus import toy_clip

    batch: dict[str, list] = {"key": [], "mp4": [], "annotation": []}
    for i in range(count):
        clip = toy_clip(i, seconds=seconds, width=96, height=96, seed=7)
        path = folder / f"{clip['__key__']}.mp4"
        path.write_bytes(clip["mp4"])
        batch["key"].append(clip["__key__"])
        batch["mp4"].append(str(path))
        batch["annotation"].append({**clip["json"], "caption": None})
    return batch


def assert_follows_schema(raw: str, schema: dict) -> None:
    """A constrained answer parses and follows the schema's structure, counts and ranges.

    String patterns are checked on the raw bytes by the grammar; after decoding, a byte sequence
    that is not valid UTF-8 (random models emit them) becomes several U+FFFD characters, which
    may exceed a pattern's length bound. The repair step truncates such text.
    """
    import json

    import jsonschema

    def relaxed(node):
        if isinstance(node, dict):
            return {k: relaxed(v) for k, v in node.items() if k != "pattern"}
        if isinstance(node, list):
            return [relaxed(v) for v in node]
        return node

    doc = json.loads(raw)
    jsonschema.validate(doc, relaxed(schema))
    strings = [doc["base"], *(p["text"] for p in doc.get("phases", []))] if "base" in doc else []
    assert all(s and not any(ord(c) < 0x20 for c in s) for s in strings)


# One local `data run` of two synthetic talking videos, one of them with its audio 4 frames late,
# shared by the AV-sync test (what the run measured and realigned) and the Ray-cluster test (a
# cluster run of the same sources must equal it byte for byte): one run serves both.
LATE_SOURCE_FRAMES = 4
# Keypoints from the puppet reader: these runs check sync, ASR and the cluster, not keypoints, and
# BlazePose on every frame costs ~25 ms (the caption pipeline test runs the mediapipe backend).
MECHANISM_RUN_OVERRIDES = ("caption.backend=none", "asr.min_speech_ratio=0", "pack.max_samples=2", "pose.backend=reader")


@pytest.fixture(scope="session")
def late_sources(tmp_path_factory) -> tuple[Path, str]:
    """(raw folder, URI of the late source): 2 mechanism-profile videos of 8 s, the first re-muxed
    with its audio LATE_SOURCE_FRAMES frames late."""
    from annotate.av_sync import realign
    from dataset.media import decode_audio, replace_audio
    from dataset.schema import AUDIO_SAMPLE_RATE
    from dataset.synth.corpus import SynthConfig, generate_corpus

    synth = tmp_path_factory.mktemp("late_synth")
    generate_corpus(SynthConfig(out=str(synth), videos=2, seed=5, min_duration=8, max_duration=8, resolutions="320x180",
                                workers=1, profile="mechanism"), progress=False)
    raw = sorted((synth / "raw").glob("*.mp4"))
    data = raw[0].read_bytes()
    audio, _ = decode_audio(data, AUDIO_SAMPLE_RATE)
    raw[0].write_bytes(replace_audio(data, realign(audio.reshape(-1), LATE_SOURCE_FRAMES)))
    return synth / "raw", str(raw[0])


def mechanism_data_run(sources: Path, out: Path, models: Path, *options: str, overrides: tuple[str, ...] = (),
                       env: dict | None = None) -> None:
    """`actavatar data run` (demo config, MECHANISM_RUN_OVERRIDES + `overrides`, then `options`) in a child process."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "actavatar", "data", "run", "--input", str(sources), "--output", str(out),
           "--config", str(repo / "configs/annotate/demo.yaml"), *asr_overrides(models), *MECHANISM_RUN_OVERRIDES,
           *overrides, "--progress-every", "0", *options]
    run = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@pytest.fixture(scope="session")
def late_sources_run(late_sources, tiny_asr_dir, tmp_path_factory) -> Path:
    """The local data run of `late_sources` (one worker)."""
    out = tmp_path_factory.mktemp("late_run") / "corpus"
    mechanism_data_run(late_sources[0], out, tiny_asr_dir, overrides=("workers=1",),
                       env={**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    return out
