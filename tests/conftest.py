"""Shared fixtures: small corpora built on the fly (tests build their own assets)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def toy_corpus_master(tmp_path_factory) -> Path:
    """A valid 6-clip corpus in 2 shards (+ 2 rejected rows), built once per session."""
    from dataset.toy_corpus import write_toy_corpus

    root = tmp_path_factory.mktemp("toy") / "corpus"
    write_toy_corpus(root, 6, num_rejected=2, max_samples=3, seconds=1.2, size=48)
    return root


@pytest.fixture
def toy_corpus(toy_corpus_master, tmp_path) -> Path:
    """A private copy of the toy corpus that a test may damage."""
    dest = tmp_path / "corpus"
    shutil.copytree(toy_corpus_master, dest)
    return dest


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory) -> Path:
    """`actavatar models tiny --only vlm`: a random Qwen2.5-VL + processor in OUT/vlm."""
    pytest.importorskip("xgrammar")
    from actavatar.models_cli import main

    out = tmp_path_factory.mktemp("tiny_vlm")
    assert main(["tiny", "--out", str(out), "--only", "vlm"]) == 0
    return out / "vlm"
