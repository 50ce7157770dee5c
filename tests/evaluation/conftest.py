"""Shared fixtures: random-weight evaluation networks written once per session in the real formats."""

from __future__ import annotations

import pytest
import torch

from evaluation.tiny_weights import write_tiny_eval_weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    return write_tiny_eval_weights(tmp_path_factory.mktemp("eval_weights"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """`actavatar models tiny` output (dit/, vae/, umt5/, wav2vec2/): a sampling checkpoint."""
    from actavatar.models_cli import main

    root = tmp_path_factory.mktemp("tiny_models")
    assert main(["tiny", "--out", str(root), "--only", "dit,vae,umt5,wav2vec2"]) == 0
    return root


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """Two short synthetic videos with exact truth (needs espeak-ng for the speech)."""
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed (the synthetic corpus speaks with it)")
    from dataset.synth.cli import main

    root = tmp_path_factory.mktemp("synth")
    assert main(["--out", str(root), "--videos", "2", "--seed", "3", "--min-duration", "6", "--max-duration", "8", "--no-progress"]) == 0
    return root


@pytest.fixture(autouse=True)
def _few_threads():
    # The test machine is shared; two intra-op threads keep runs predictable.
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)
