"""SyncNet (Chung & Zisserman 2016) as in syncnet_python's `SyncNetModel.S`, same parameter names.

Audio branch: MFCC (N, 1, 13, 20) -> 1024-d. Lip branch: 5 stacked face crops (N, 3, 5, 224, 224),
BGR, raw [0, 255] values (syncnet_python reads frames with cv2 and feeds them unscaled) -> 1024-d.
Weights come from a local `syncnet_v2.model` (a state dict; loaded with weights_only=True).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from evaluation.weights import load_into, load_state_dict

SYNCNET_HOW = (
    "Get syncnet_v2.model (VGG's SyncNet, fetched by download_model.sh in joonson/syncnet_python) on a machine "
    "with network access, copy it here and pass its path (--syncnet)."
)


def _conv_bn(cin: int, cout: int, kernel: tuple[int, ...], dims: int, **kw: object) -> list[nn.Module]:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    return [conv(cin, cout, kernel_size=kernel, **kw), bn(cout), nn.ReLU(inplace=True)]


def _head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """Args:
        embed_dim: output size of both branches (1024 in syncnet_v2.model).
    """

    def __init__(self, embed_dim: int = 1024) -> None:
        super().__init__()
        # Indices inside each Sequential must match syncnet_python's, so the checkpoint keys line up.
        self.netcnnaud = nn.Sequential(
            *_conv_bn(1, 64, (3, 3), 2, stride=(1, 1), padding=(1, 1)),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            *_conv_bn(64, 192, (3, 3), 2, stride=(1, 1), padding=(1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            *_conv_bn(192, 384, (3, 3), 2, padding=(1, 1)),
            *_conv_bn(384, 256, (3, 3), 2, padding=(1, 1)),
            *_conv_bn(256, 256, (3, 3), 2, padding=(1, 1)),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            *_conv_bn(256, 512, (5, 4), 2, padding=(0, 0)),
        )  # (N, 1, 13, 20) -> (N, 512, 1, 1)
        self.netfcaud = _head(embed_dim)
        self.netfclip = _head(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv_bn(3, 96, (5, 7, 7), 3, stride=(1, 2, 2), padding=0),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn(96, 256, (1, 5, 5), 3, stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn(256, 256, (1, 3, 3), 3, padding=(0, 1, 1)),
            *_conv_bn(256, 256, (1, 3, 3), 3, padding=(0, 1, 1)),
            *_conv_bn(256, 256, (1, 3, 3), 3, padding=(0, 1, 1)),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn(256, 512, (1, 6, 6), 3, padding=0),
        )  # (N, 3, 5, 224, 224) -> (N, 512, 1, 1, 1)

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed_dim)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR [0, 255] crops -> (N, embed_dim)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """SyncNet in eval mode with weights from a local `syncnet_v2.model` state dict."""
    state = load_state_dict(path, what="SyncNet", how=SYNCNET_HOW)
    dim = state["netfcaud.3.weight"].shape[0] if "netfcaud.3.weight" in state else 1024
    model = load_into(SyncNet(dim), state, path=path, what="SyncNet", how=SYNCNET_HOW)
    return model.eval().to(device)
