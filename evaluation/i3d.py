"""Inception-I3D (Carreira & Zisserman 2017, layout of piergiaj/pytorch-i3d), TorchScript-ready.

The FVD protocol uses StyleGAN-V's TorchScript port of the TF-Hub I3D (`i3d_torchscript.pt`), called
as `detector(videos, rescale=True, resize=True, return_features=True)` on uint8 (B, 3, T, H, W)
and returning the 400 Kinetics logits before softmax. That file cannot be rebuilt from this code
(its weights differ from any released state dict); it is loaded as is with `torch.jit.load`.
This module gives the same architecture and call signature so that:
  - tests export a small random-weight I3D with `torch.jit.script` + `torch.jit.save` and the
    production loading path (`torch.jit.load` of a local file) runs for real;
  - `width_div` > 1 shrinks every channel count for fast CPU tests (1 = the real I3D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (out_b0, out_b1a, out_b1b, out_b2a, out_b2b, out_b3b) per Inception module, from the I3D paper.
MIXED: dict[str, tuple[int, int, int, int, int, int]] = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # TF "SAME" padding, asymmetric (the extra pixel goes after), as in the TF-Hub graph.
    if size % stride == 0:
        total = max(kernel - stride, 0)
    else:
        total = max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: list[int], stride: list[int]) -> torch.Tensor:
    t0, t1 = _same_pad(x.shape[2], kernel[0], stride[0])
    h0, h1 = _same_pad(x.shape[3], kernel[1], stride[1])
    w0, w1 = _same_pad(x.shape[4], kernel[2], stride[2])
    return F.pad(x, [w0, w1, h0, h1, t0, t1])


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: list[int], stride: list[int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (TF SAME padding) + BatchNorm (eps 1e-3) + ReLU; the logits unit has bias and no BN/ReLU."""

    def __init__(self, cin: int, cout: int, kernel: list[int], stride: list[int] | None = None, *, logits: bool = False) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride or [1, 1, 1]
        self.logits = logits
        self.conv3d = nn.Conv3d(cin, cout, kernel, self.stride, padding=0, bias=logits)
        self.bn = nn.Identity() if logits else nn.BatchNorm3d(cout, eps=0.001, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv3d(_pad_same(x, self.kernel, self.stride)))
        return x if self.logits else F.relu(x)


class InceptionModule(nn.Module):
    def __init__(self, cin: int, out: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(cin, out[0], [1, 1, 1])
        self.b1a = Unit3D(cin, out[1], [1, 1, 1])
        self.b1b = Unit3D(out[1], out[2], [3, 3, 3])
        self.b2a = Unit3D(cin, out[3], [1, 1, 1])
        self.b2b = Unit3D(out[3], out[4], [3, 3, 3])
        self.b3a = MaxPool3dSame([3, 3, 3], [1, 1, 1])
        self.b3b = Unit3D(cin, out[5], [1, 1, 1])
        self.out_channels = out[0] + out[2] + out[4] + out[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """I3D with StyleGAN-V's detector call signature.

    Args:
        num_classes: 400 for Kinetics-400.
        width_div: divide every channel count by this (1 = the real network; tests use 8).
        input_size: side the `resize=True` path resizes frames to (224 in the FVD protocol).
    """

    def __init__(self, num_classes: int = 400, width_div: int = 1, input_size: int = 224) -> None:
        super().__init__()
        if width_div < 1:
            raise ValueError(f"i3d.width_div must be >= 1, got {width_div}")
        self.input_size = input_size

        def c(n: int) -> int:
            return max(1, n // width_div)

        # 1. Stem.
        self.Conv3d_1a_7x7 = Unit3D(3, c(64), [7, 7, 7], [2, 2, 2])
        self.MaxPool3d_2a_3x3 = MaxPool3dSame([1, 3, 3], [1, 2, 2])
        self.Conv3d_2b_1x1 = Unit3D(c(64), c(64), [1, 1, 1])
        self.Conv3d_2c_3x3 = Unit3D(c(64), c(192), [3, 3, 3])
        self.MaxPool3d_3a_3x3 = MaxPool3dSame([1, 3, 3], [1, 2, 2])
        # 2. Inception modules with the two temporal/spatial poolings between stages.
        cin = c(192)
        blocks: list[nn.Module] = []
        for name, out in MIXED.items():
            if name == "Mixed_4b":
                blocks.append(MaxPool3dSame([3, 3, 3], [2, 2, 2]))  # MaxPool3d_4a_3x3
            if name == "Mixed_5b":
                blocks.append(MaxPool3dSame([2, 2, 2], [2, 2, 2]))  # MaxPool3d_5a_2x2
            module = InceptionModule(cin, tuple(c(n) for n in out))  # type: ignore[arg-type]
            blocks.append(module)
            cin = module.out_channels
        self.mixed = nn.Sequential(*blocks)
        # 3. Logits: 1x1x1 conv over (2, 7, 7) average-pooled features.
        self.logits = Unit3D(cin, num_classes, [1, 1, 1], logits=True)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> torch.Tensor:
        """(B, 3, T, H, W) videos -> (B, num_classes) logits (`return_features`) or probabilities.

        rescale: inputs are in [0, 255] (uint8 or float) and are mapped to [-1, 1].
        resize: frames are resized (trilinear over H, W; T kept) to input_size × input_size.
        """
        x = x.float()
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], self.input_size, self.input_size], mode="trilinear", align_corners=False)
        # 1. Stem.
        x = self.MaxPool3d_2a_3x3(self.Conv3d_1a_7x7(x))
        x = self.MaxPool3d_3a_3x3(self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x)))
        # 2. Inception stages.
        x = self.mixed(x)  # (B, 1024, T/8, H/32, W/32)
        # 3. Logits averaged over the remaining time steps.
        kt, kh, kw = min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4])
        x = F.avg_pool3d(x, [kt, kh, kw], [1, 1, 1])
        logits = self.logits(x).mean(dim=[2, 3, 4])  # (B, num_classes)
        return logits if return_features else F.softmax(logits, dim=1)


def export_torchscript(model: InceptionI3d, path: str) -> None:
    """Script and save an I3D so it loads like `i3d_torchscript.pt` (tests, `models tiny`)."""
    torch.jit.save(torch.jit.script(model.eval()), path)
