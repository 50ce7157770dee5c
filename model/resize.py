"""The one image/frame preprocessing of the model's inputs: scale to cover, centre-crop, map to [-1, 1].

Training windows (`train.clip_window.cut_window`) and the sampler's reference image
(`evaluation.sample.image_tensor`) both go through `cover_crop`, so the reference frame the model
sees at sampling time is prepared exactly like the first frame of a training window.
`PREPROCESSING` names it in a checkpoint's conditioning.json.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREPROCESSING = "cover_crop_bilinear_antialias_round"


def cover_crop_box(height: int, width: int, out_height: int, out_width: int) -> tuple[float, tuple[int, int], int, int]:
    """(scale, (resized_h, resized_w), top, left): the scale that covers out_height x out_width, the
    resized size (rounded, never below the output) and the centre crop's offsets in it."""
    scale = max(out_height / height, out_width / width)
    size = (max(out_height, round(height * scale)), max(out_width, round(width * scale)))
    return scale, size, (size[0] - out_height) // 2, (size[1] - out_width) // 2


def box_in_cover_crop(box: tuple[float, ...], height: int, width: int, out_height: int, out_width: int) -> tuple[float, ...]:
    """A box (x0, y0, x1, y1) normalised to a height x width image -> normalised to the frame
    `cover_crop` makes of it (clamped to [0, 1])."""
    _, size, top, left = cover_crop_box(height, width, out_height, out_width)
    x0, y0, x1, y1 = (float(v) for v in box)
    xs = [min(max((x * size[1] - left) / out_width, 0.0), 1.0) for x in (x0, x1)]
    ys = [min(max((y * size[0] - top) / out_height, 0.0), 1.0) for y in (y0, y1)]
    return xs[0], ys[0], xs[1], ys[1]


def cover_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) or one image (H, W, 3) -> float32 (T, 3, height, width) in [-1, 1].

    Bilinear with antialiasing (a box-like filter when shrinking, no aliasing on fine texture),
    then a centre crop; a frame already of the output size is only converted.
    """
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3) or (H, W, 3), got shape {tuple(frames.shape)}")
    clip = frames.permute(0, 3, 1, 2).float()  # (T, 3, H, W)
    _, size, top, left = cover_crop_box(clip.shape[2], clip.shape[3], height, width)
    if size != tuple(clip.shape[2:]):
        clip = F.interpolate(clip, size=size, mode="bilinear", antialias=True, align_corners=False)
    clip = clip[:, :, top : top + height, left : left + width]  # (T, 3, height, width)
    return (clip / 127.5 - 1.0).clamp(-1.0, 1.0).contiguous()
