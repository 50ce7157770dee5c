"""Identity similarity with a face embedder loaded from a local file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.identity import IdentityConfig, identity_similarity, load_face_embedder
from evaluation.tiny_weights import TinyFaceEmbedder
from evaluation.weights import WeightsError


def _face(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.repeat(np.repeat(rng.uniform(0, 255, (8, 8, 3)), 8, 0), 8, 1).astype(np.uint8)


def test_torchscript_embedder_same_face_scores_one_other_face_less(tiny_weights):
    model = load_face_embedder(tiny_weights["face_embedder"])
    ref = _face(0)
    assert identity_similarity(model, ref, np.stack([ref, ref])) == pytest.approx(1.0, abs=1e-5)
    other = identity_similarity(model, ref, np.stack([_face(1), _face(2)]))
    assert -1.0 <= other < 1.0 - 1e-5  # random weights: lower, not necessarily low
    # The tiny network can fail a test: a near copy (noise of +-3 grey levels) scores clearly above other faces.
    rng = np.random.default_rng(9)
    near = np.clip(ref[None].astype(int) + rng.integers(-3, 4, (2, *ref.shape)), 0, 255).astype(np.uint8)
    assert identity_similarity(model, ref, near) > other + 0.05


def test_state_dict_with_builder_and_errors(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "embedder.pth"
    torch.save(TinyFaceEmbedder().state_dict(), path)
    model = load_face_embedder(path, build=TinyFaceEmbedder)
    frames = np.stack([_face(3)] * 3)
    sim = identity_similarity(model, _face(3), frames, cfg=IdentityConfig(frame_stride=2),
                              crop_faces=lambda x: x[:, 4:60, 4:60])
    assert sim == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(WeightsError, match="not a TorchScript archive"):
        load_face_embedder(_write(tmp_path))
    with pytest.raises(ValueError, match="identity.frame_stride"):
        IdentityConfig(frame_stride=0)


def _write(tmp_path):
    path = tmp_path / "plain.bin"
    path.write_bytes(b"\x00" * 16)
    return path
