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
