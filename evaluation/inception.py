"""The FID Inception-v3 (pytorch-fid's port of TF's 2015-12-05 graph) as a pool3 feature extractor.

Architecture: torchvision's Inception-v3 blocks with the FID patches (TF average pooling that
ignores padded zeros in the A/C/E blocks, max pooling in the last E block), 1008-way `fc`, no aux
head, so `pt_inception-2015-12-05-6726825d.pth` loads with strict key and shape checks.

`FIDInceptionFeatures` takes uint8 images (N, 3, H, W) in [0, 255] (or floats in [0, 1]), resizes
to 299×299 and returns (N, 2048) pool3 features (or, like pytorch-fid's `--dims`, the spatially
averaged 64/192/768-d outputs of earlier blocks: cheap features for tests, never for reported FID).
It has `num_features`, so it plugs into
`torchmetrics.image.fid.FrechetInceptionDistance(feature=<module>)`, which then feeds it the images
unchanged (torchmetrics applies no resize or scaling to a custom extractor).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv

from dataset.errors import UserError
from evaluation.weights import load_into, load_state_dict

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_HOW = (
    f"Get {FID_WEIGHTS_NAME} from the pytorch-fid release 'fid_weights' on GitHub (mseitzer/pytorch-fid) "
    "on a machine with network access, copy it here and pass its path (--fid-weights)."
)
RESIZE_MODES = ("bilinear", "bicubic")
FEATURE_DIMS = (64, 192, 768, 2048)  # pytorch-fid's BLOCK_INDEX_BY_DIM: maxpool1, maxpool2, pre-aux, pool3


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool does not count the zero padding; torchvision's blocks do.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv.InceptionA):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class FIDInceptionC(tv.InceptionC):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class FIDInceptionE(tv.InceptionE):
    """InceptionE with the pool branch of the TF graph: average (Mixed_7b) or max (Mixed_7c)."""

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        # The TF FID graph max-pools in its last block (an oddity of that graph, kept for parity).
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 FID variant; attribute names match the pytorch-fid state dict."""

    def __init__(self) -> None:
        super().__init__()
        conv = tv.BasicConv2d
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = tv.InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = tv.InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # unused for FID; present so the checkpoint loads strictly

    def features(self, x: torch.Tensor, dims: int = 2048) -> torch.Tensor:
        """(N, 3, 299, 299) in [-1, 1] -> (N, dims): pool3 (2048) or an earlier block, averaged over space."""
        # 1. Stem (pytorch-fid blocks 0 and 1).
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        if dims == 64:
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        if dims == 192:
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        # 2. Mixed blocks (block 2 ends before the aux head at (N, 768, 17, 17), block 3 at (N, 2048, 8, 8)).
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)
        if dims == 768:
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        # 3. Global average pool.
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 2048)


@dataclass(frozen=True, kw_only=True, slots=True)
class InceptionResizeConfig:
    """How images reach 299×299. The default is pytorch-fid's protocol.

    Args:
        mode: "bilinear" (pytorch-fid) or "bicubic".
        antialias: low-pass before downsampling (torch's antialias; pytorch-fid uses False).
        size: side of the square network input.
    """

    mode: str = "bilinear"
    antialias: bool = False
    size: int = 299

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise UserError(f"fid.resize.mode must be one of {RESIZE_MODES}, got {self.mode!r}")
        if self.size < 75:
            raise UserError(f"fid.resize.size must be >= 75 (Inception's smallest input), got {self.size}")

    def describe(self) -> str:
        return f"{self.mode} to {self.size}x{self.size}, antialias={self.antialias}, align_corners=False (torch.nn.functional.interpolate)"


class FIDInceptionFeatures(nn.Module):
    """Images -> pool3 features, ready for torchmetrics' `FrechetInceptionDistance(feature=self)`.

    Args:
        net: the Inception (loaded weights, or random for tests).
        resize: resize protocol; stated in every FID result.
        dims: 2048 (pool3, the FID standard) or 64/192/768 (earlier blocks, as pytorch-fid's --dims).
    """

    def __init__(self, net: FIDInceptionV3, resize: InceptionResizeConfig = InceptionResizeConfig(), dims: int = 2048) -> None:
        super().__init__()
        if dims not in FEATURE_DIMS:
            raise ValueError(f"fid.dims must be one of {FEATURE_DIMS}, got {dims}")
        self.net = net.eval().requires_grad_(False)
        self.resize = resize
        self.num_features = dims  # read by torchmetrics to size its statistics
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionFeatures:
        # A feature extractor never trains: BatchNorm must keep its running statistics.
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        # uint8 [0, 255] (torchmetrics' normalize=False) or float [0, 1] (normalize=True).
        images = images.contiguous()  # NCHW memory layout, as pytorch-fid's loader gives (exact features)
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        size = (self.resize.size, self.resize.size)
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode=self.resize.mode, align_corners=False, antialias=self.resize.antialias)
        x = 2.0 * x - 1.0  # the TF graph expects [-1, 1]
        dtype = next(self.net.parameters()).dtype
        return self.net.features(x.to(dtype), self.num_features).float()


def load_fid_inception(
    path: str | Path, *, resize: InceptionResizeConfig = InceptionResizeConfig(), dims: int = 2048,
    device: str | torch.device = "cpu",
) -> FIDInceptionFeatures:
    """The FID feature extractor with weights from a local `pt_inception-2015-12-05-*.pth` state dict."""
    state = load_state_dict(path, what="FID Inception", how=FID_WEIGHTS_HOW)
    net = load_into(FIDInceptionV3(), state, path=path, what="FID Inception", how=FID_WEIGHTS_HOW)
    return FIDInceptionFeatures(net, resize, dims).to(device)
