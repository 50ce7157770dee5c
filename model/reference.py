"""Reference-image identity conditioning, Wan style (pure tensor helpers).

Wan2.1 I2V: the DiT input is [noisy latents | mask (stride channels) | condition latents] on channels,
where the condition latents encode [image, zeros...] and the mask marks video frame 0 as known.
Wan2.2 TI2V: latent frame 0 is replaced by the image latent and its tokens get timestep 0.

Long videos continue a window from the previous one's last frames (motion frames) with the same
two mechanisms: the I2V mask marks the first `known` video frames, TI2V keeps the first latent
frames clean (see `evaluation/sample.py`).
"""

from __future__ import annotations

import torch


def i2v_mask(num_video_frames: int, height: int, width: int, *, stride: int = 4, batch: int = 1, device=None,
             known: int = 1) -> torch.Tensor:
    """(B, stride, F, h, w) mask: 1 on the channels standing for the first `known` video frames, else 0.

    As diffusers' WanImageToVideoPipeline (known = 1: the image): per-video-frame mask, frame 0
    repeated `stride` times so the count divides by the stride, then folded (T -> F x stride) onto
    channels.
    """
    if (num_video_frames - 1) % stride:
        raise ValueError(f"num_video_frames must be 1 + {stride}k for the Wan VAE, got {num_video_frames}")
    if not 1 <= known <= num_video_frames:
        raise ValueError(f"known must be in [1, {num_video_frames}], got {known}")
    m = torch.zeros(batch, 1, num_video_frames, height, width, device=device)
    m[:, :, :known] = 1
    m = torch.cat([m[:, :, :1].repeat_interleave(stride, dim=2), m[:, :, 1:]], dim=2)  # (B, 1, T+stride-1, h, w)
    n_lat = m.shape[2] // stride
    return m.view(batch, n_lat, stride, height, width).transpose(1, 2)  # (B, stride, F, h, w)


def i2v_condition(cond_latents: torch.Tensor, num_video_frames: int, *, stride: int = 4, known: int = 1) -> torch.Tensor:
    """(B, z, F, h, w) latents of [known frames, zeros...] -> (B, stride + z, F, h, w) = [mask | latents]."""
    b, _, n_lat, h, w = cond_latents.shape
    mask = i2v_mask(num_video_frames, h, w, stride=stride, batch=b, device=cond_latents.device, known=known)
    if mask.shape[2] != n_lat:
        raise ValueError(f"{num_video_frames} video frames give {mask.shape[2]} latent frames, latents have {n_lat}")
    return torch.cat([mask.to(cond_latents.dtype), cond_latents], dim=1)


def i2v_input(noisy: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """DiT input for Wan2.1 I2V: (B, z, F, h, w) + (B, stride + z, F, h, w) -> (B, 2z + stride, F, h, w)."""
    return torch.cat([noisy, condition.to(noisy.dtype)], dim=1)


def ti2v_inject(noisy: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Wan2.2 TI2V: the first latent frames <- known latents (B, z, K, h, w) (K = 1: the image); the
    other frames unchanged."""
    return torch.cat([known.to(noisy.dtype), noisy[:, :, known.shape[2]:]], dim=2)


def ti2v_timesteps(timestep: torch.Tensor, grid: tuple[int, int, int], patch_size: tuple[int, int, int] = (1, 2, 2),
                   known: int = 1) -> torch.Tensor:
    """(B,) timesteps -> (B, L) per token, zero on the first `known` latent frames' tokens (the image)."""
    f, h, w = (g // p for g, p in zip(grid, patch_size, strict=True))
    per_frame = timestep[:, None].expand(-1, f).clone()  # (B, F)
    per_frame[:, :known] = 0
    return per_frame.repeat_interleave(h * w, dim=1)  # (B, F*H*W)
