"""Random-weight evaluation networks in the real file formats, so every loading path runs offline.

`write_tiny_eval_weights(dir)` writes what `actavatar eval` (and `actavatar models tiny`) point at:
  - fid_inception.pth: the full FID Inception architecture, random weights, pytorch-fid state dict format;
  - i3d_torchscript.pt: `InceptionI3d(width_div=8)` scripted and saved like StyleGAN-V's file;
  - syncnet.model: the full SyncNet, random weights, syncnet_v2.model state dict format;
  - face_embedder.pt: a small CNN scripted to TorchScript (stands in for an ArcFace export).
The numbers these produce are meaningless; the code paths are the real ones. With random weights
FID/FVD still order feature-space shifts (identical sets -> ~0, perturbed sets -> larger), but do
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
    """(N, 3, 112, 112) in [-1, 1] -> (N, dim); a few strided convs and a projection."""

    def __init__(self, dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def random_fid_inception(seed: int = 0) -> FIDInceptionV3:
    """FID Inception with He-normal random init, so activations keep an O(1) scale through ~90 layers."""
    torch.manual_seed(seed)
    net = FIDInceptionV3()
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return net.eval()


def write_tiny_eval_weights(out_dir: str | Path, *, seed: int = 0) -> dict[str, Path]:
    """Write the four files into `out_dir`; returns {"fid_weights", "i3d", "syncnet", "face_embedder"} paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fid_weights": out / "fid_inception.pth", "i3d": out / "i3d_torchscript.pt",
             "syncnet": out / "syncnet.model", "face_embedder": out / "face_embedder.pt"}
    torch.save(random_fid_inception(seed).state_dict(), paths["fid_weights"])
    torch.manual_seed(seed)
    export_torchscript(InceptionI3d(width_div=8), str(paths["i3d"]))
    torch.manual_seed(seed)
    torch.save(SyncNet().state_dict(), paths["syncnet"])
    torch.manual_seed(seed)
    torch.jit.save(torch.jit.script(TinyFaceEmbedder().eval()), str(paths["face_embedder"]))
    return paths
