"""Identity similarity: cosine similarity between face embeddings of the reference image and frames.

The embedding network (ArcFace-style: aligned face crop -> D-d vector) comes from a local file:
either a TorchScript archive (`torch.jit.load`), or a state dict for an architecture the caller
builds (`build=` callable; loaded with weights_only=True). Per clip the score is the mean over
frames of cos(embed(reference), embed(frame)); the dataset figure is the mean over clips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import UserError
from evaluation.sync import CropFaces
from evaluation.weights import load_into, load_state_dict, load_torchscript

IDENTITY_HOW = (
    "Export a face-recognition network (e.g. an ArcFace/InsightFace iresnet) to TorchScript with torch.jit.trace "
    "on a (1, 3, 112, 112) input, or save its state dict and pass the architecture; pass the path (--face-embedder)."
)


@dataclass(frozen=True, kw_only=True, slots=True)
class IdentityConfig:
    """Args:
        input_size: square side the face crops are resized to (112 for ArcFace).
        mean, std: per-channel normalisation after scaling to [0, 1] (ArcFace: 0.5, 0.5 -> [-1, 1]).
        frame_stride: embed every n-th frame.
        batch_size: crops per forward.
    """

    input_size: int = 112
    mean: float = 0.5
    std: float = 0.5
    frame_stride: int = 1
    batch_size: int = 32

    def __post_init__(self) -> None:
        for key, value in (("input_size", self.input_size), ("frame_stride", self.frame_stride), ("batch_size", self.batch_size)):
            if value < 1:
                raise UserError(f"identity.{key} must be >= 1, got {value}")
        if self.std <= 0:
            raise UserError(f"identity.std must be > 0, got {self.std}")


def load_face_embedder(path: str | Path, *, build: Callable[[], nn.Module] | None = None,
                       device: str | torch.device = "cpu") -> nn.Module:
    """A face embedding network from a local TorchScript file, or a state dict into `build()`."""
    if build is None:
        return load_torchscript(path, what="face embedder", how=IDENTITY_HOW, device=device)
    state = load_state_dict(path, what="face embedder", how=IDENTITY_HOW)
    return load_into(build(), state, path=path, what="face embedder", how=IDENTITY_HOW).eval().to(device)


@torch.no_grad()
def embed_faces(model: nn.Module, faces: np.ndarray, cfg: IdentityConfig = IdentityConfig()) -> torch.Tensor:
    """uint8 (N, H, W, 3) RGB face crops -> (N, D) L2-normalised embeddings."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (N, H, W, 3), got {faces.shape}")
    device = next(iter(model.parameters()), torch.empty(0)).device
    out = []
    for start in range(0, len(faces), cfg.batch_size):
        x = torch.from_numpy(np.array(faces[start : start + cfg.batch_size])).permute(0, 3, 1, 2).float() / 255.0  # a writable copy
        x = F.interpolate(x, size=(cfg.input_size, cfg.input_size), mode="bilinear", align_corners=False, antialias=True)
        out.append(model(((x - cfg.mean) / cfg.std).to(device)).float().cpu())
    return F.normalize(torch.cat(out), dim=1)


def identity_similarity(
    model: nn.Module, reference: np.ndarray, frames: np.ndarray, *, crop_faces: CropFaces | None = None,
    cfg: IdentityConfig = IdentityConfig(),
) -> float:
    """Mean cosine similarity between the reference image (H, W, 3) and every `frame_stride`-th frame."""
    reference = np.asarray(reference)[None]
    frames = np.asarray(frames)[:: cfg.frame_stride]
    if crop_faces is not None:
        reference, frames = crop_faces(reference), crop_faces(frames)
    ref = embed_faces(model, reference, cfg)  # (1, D)
    gen = embed_faces(model, frames, cfg)  # (T, D)
    return float((gen @ ref[0]).mean())
