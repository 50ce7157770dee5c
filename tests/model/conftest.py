"""Shared tiny fixtures for the model tests (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All tiny models written once by `actavatar.models_cli tiny`."""
    from actavatar.models_cli import main

    out = tmp_path_factory.mktemp("tiny_models")
    assert main(["tiny", "--out", str(out), "--only", "dit,wan_dit,vae,umt5,wav2vec2"]) == 0
    return out


def _annotation(phases: list[tuple[float, float, str]], num_frames: int = 17, fps: float = 25.0) -> dict:
    return {
        "caption": {
            "base": "A woman in a grey blazer talks to the camera.",
            "phases": [{"start_s": s, "end_s": e, "text": t} for s, e, t in phases],
        },
        "video": {"fps": fps, "num_frames": num_frames},
    }


@pytest.fixture
def make_annotation():
    """Factory: phases [(start_s, end_s, text)] -> a DESIGN.md §3-shaped annotation (fields the model reads)."""
    return _annotation
