"""CLIP image tokens for Wan2.1 I2V: the reference image through a CLIP vision tower, penultimate layer.

As diffusers' `WanImageToVideoPipeline.encode_image`: the image goes through the checkpoint's own
`CLIPImageProcessor` (resize, centre crop, CLIP normalisation) and `CLIPVisionModel`; the tokens are
`hidden_states[-2]` (ViT-H/14 at 224 px: 257 tokens of 1280), fed to the DiT's `image` input (its
added key/value projections). Loaded by `train.pretrained.load_image_encoder`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class ImageEncoder(nn.Module):
    """Frozen CLIP vision tower + its processor.

    Args:
        processor: a transformers `CLIPImageProcessor`.
        model: a transformers `CLIPVisionModel`.
    """

    def __init__(self, processor: Any, model: nn.Module) -> None:
        super().__init__()
        self.processor = processor
        self.model = model.eval().requires_grad_(False)

    @property
    def output_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def forward(self, images: list[np.ndarray] | list[Any]) -> torch.Tensor:
        """uint8 (H, W, 3) arrays or PIL images -> (B, tokens, hidden) fp32 penultimate-layer tokens."""
        param = next(self.model.parameters())
        pixels = self.processor(images=list(images), return_tensors="pt")["pixel_values"]
        out = self.model(pixel_values=pixels.to(param.device, param.dtype), output_hidden_states=True)
        return out.hidden_states[-2].float()
