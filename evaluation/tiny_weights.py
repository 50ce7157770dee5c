"""Random-weight evaluation networks in the real file formats, so every loading path runs offline.

`write_tiny_eval_weights(dir)` writes what `actavatar eval` (and `actavatar models tiny`) point at:
  - fid_inception.pth: the full FID Inception architecture, random weights, pytorch-fid state dict format;
  - i3d_torchscript.pt: `InceptionI3d(width_div=8)` scripted and saved like StyleGAN-V's file;
  - syncnet.model: the full SyncNet, random weights, syncnet_v2.model state dict format;
  - face_embedder.pt: a small CNN scripted to TorchScript (stands in for an ArcFace export).
The numbers these produce are meaningless; the code paths are the real ones. Every network is
initialised by `varied_init` (He-normal weights, random biases and BatchNorm statistics) so its
features vary with the input: with PyTorch's default init the I3D logits are the same for every
clip (feature covariance ~1e-15) and a test could not tell two video sets apart. With these
weights FID/FVD order feature-space shifts (identical sets -> ~0, perturbed sets -> larger), but do
not say anything about perceptual quality, Sync-C/offset do not measure lip sync, and identity
similarity does not measure identity.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from evaluation.i3d import InceptionI3d, export_torchscript
from evaluation.inception import FIDInceptionV3
from evaluation.syncnet import SyncNet


class TinyFaceEmbedder(nn.Module):
    """(N, 3, 112, 112) in [-1, 1] -> (N, dim): strided convs, a 7×7 spatial grid, a projection and a
    BatchNorm on the embedding (as ArcFace's iresnet ends). Pooling to one cell instead left every face
    with nearly the same embedding (cosine 0.997 between unrelated faces) under random weights."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(32 * 49, dim), nn.BatchNorm1d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def varied_init(net: nn.Module, seed: int) -> nn.Module:
    """Random weights whose outputs vary with the input: He-normal convolutions and linears (activations
    keep an O(1) scale through deep ReLU stacks), small random biases, random BatchNorm affine and
    running statistics (eval-mode BatchNorm then is a random per-channel affine map, not the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.1, generator=g)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0.0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                if m.affine:
                    m.weight.uniform_(0.8, 1.2, generator=g)
                    m.bias.normal_(0.0, 0.1, generator=g)
    return net.eval()


def random_fid_inception(seed: int = 0) -> FIDInceptionV3:
    """The FID Inception with `varied_init` weights."""
    return varied_init(FIDInceptionV3(), seed)


def random_i3d(seed: int = 0, *, width_div: int = 8) -> InceptionI3d:
    """StyleGAN-V's I3D architecture (channels divided by `width_div`) with `varied_init` weights."""
    return varied_init(InceptionI3d(width_div=width_div), seed)


def random_syncnet(seed: int = 0) -> SyncNet:
    """syncnet_python's SyncNet with `varied_init` weights."""
    return varied_init(SyncNet(), seed)


def write_tiny_eval_weights(out_dir: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Write the four files into `out_dir`; returns {"fid_weights", "i3d", "syncnet", "face_embedder"} paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fid_weights": out / "fid_inception.pth", "i3d": out / "i3d_torchscript.pt",
             "syncnet": out / "syncnet.model", "face_embedder": out / "face_embedder.pt"}
    torch.save(random_fid_inception(seed).state_dict(), paths["fid_weights"])
    export_torchscript(random_i3d(seed), str(paths["i3d"]))
    torch.save(random_syncnet(seed).state_dict(), paths["syncnet"])
    torch.jit.save(torch.jit.script(varied_init(TinyFaceEmbedder(), seed)), str(paths["face_embedder"]))
    return paths
