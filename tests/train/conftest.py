"""Shared tiny fixtures for the trainer tests: one toy corpus, tiny encoders, cached latents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 toy clips of 1.2 s at 48 px, 2 per shard (4 shards: 2 ranks x 2 workers fit)."""
    from dataset.toy_corpus import write_toy_corpus

    out = tmp_path_factory.mktemp("corpus")
    write_toy_corpus(out, 8, seconds=1.2, size=48, max_samples=2)
    return out


@pytest.fixture(scope="session")
def tiny_encoders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from actavatar.models_cli import main

    out = tmp_path_factory.mktemp("tiny")
    assert main(["tiny", "--out", str(out), "--only", "vae,umt5,wav2vec2"]) == 0
    return out


def encoder_overrides(tiny: Path) -> list[str]:
    return [f"encoders.text={tiny}/umt5", f"encoders.vae={tiny}/vae", f"encoders.audio={tiny}/wav2vec2"]


@pytest.fixture(scope="session")
def latents(tmp_path_factory: pytest.TempPathFactory, corpus: Path, tiny_encoders: Path) -> Path:
    """The corpus encoded once (9-frame 32 px windows) by `train.encode_cli`."""
    from train.encode_cli import main

    out = tmp_path_factory.mktemp("latents")
    argv = ["--config", "configs/train/stage1_debug.yaml", "--out", str(out), "--max-samples", "2",
            f"data.shards={corpus}", "data.buckets=[9x32x32]", *encoder_overrides(tiny_encoders)]
    assert main(argv) == 0
    return out


def fast_overrides(out: Path, steps: int) -> list[str]:
    """A quiet, quick run: no progress bar / TensorBoard, in-process data loading."""
    return [f"output_dir={out}", f"steps={steps}", "log.progress=false", "log.tensorboard=false", "data.num_workers=0"]
