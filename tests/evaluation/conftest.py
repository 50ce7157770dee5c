"""Shared fixtures: random-weight evaluation networks written once per session in the real formats."""

from __future__ import annotations

import pytest
import torch

from evaluation.tiny_weights import write_tiny_eval_weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    return write_tiny_eval_weights(tmp_path_factory.mktemp("eval_weights"))


@pytest.fixture(autouse=True)
def _few_threads():
    # The test machine is shared; two intra-op threads keep runs predictable.
    old = torch.get_num_threads()
    torch.set_num_threads(min(old, 2))
    yield
    torch.set_num_threads(old)
