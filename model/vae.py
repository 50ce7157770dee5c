"""Wan VAE wrapper: video <-> normalised latents with diffusers `AutoencoderKLWan`.

Takes an already-built `AutoencoderKLWan` (loaders: train/pretrained.py). Latents are normalised as
in diffusers' Wan pipelines: z_norm = (z - latents_mean) / latents_std, per channel.
"""

from __future__ import annotations

import torch
from torch import nn


class VideoVAE(nn.Module):
    """Frozen Wan VAE with latent normalisation and the I2V reference-video encoding.

    Args:
        vae: a diffusers `AutoencoderKLWan` (Wan2.1: z 16, stride 4x8x8; Wan2.2: z 48, 4x16x16).
    """

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.vae = vae.eval().requires_grad_(False)
        cfg = vae.config
        z = int(cfg.z_dim)
        self.register_buffer("mean", torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, z, 1, 1, 1), persistent=False)
        self.temporal_stride = int(getattr(cfg, "scale_factor_temporal", None) or 4)
        self.spatial_stride = int(getattr(cfg, "scale_factor_spatial", None) or 8)
        self.latent_channels = z

    def train(self, mode: bool = True) -> "VideoVAE":
        super().train(mode)
        self.vae.eval()
        return self

    @torch.no_grad()
    def encode(self, video: torch.Tensor, *, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """video (B, 3, T, H, W) in [-1, 1], T = 1 + 4k -> normalised latents (B, z, 1 + k, H/s, W/s)."""
        dist = self.vae.encode(video.to(self.vae.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return (z.float() - self.mean) / self.std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> video (B, 3, T, H, W), clamped to [-1, 1]."""
        z = latents.float() * self.std + self.mean
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)

    @torch.no_grad()
    def encode_reference(self, image: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Wan2.1 I2V condition latents: encode [image, zeros x (num_frames - 1)] -> (B, z, F, h, w)."""
        b, c, h, w = image.shape
        video = torch.zeros(b, c, num_frames, h, w, dtype=image.dtype, device=image.device)
        video[:, :, 0] = image
        return self.encode(video)
