"""One training window of a clip: where it starts, whether it uses phases, and cutting it out.

Planning reads only the annotation (cheap, done before decoding, so a resumed run can skip
batches without decoding them); `cut_window` turns decoded frames and audio into the bucket's
tensors. Randomness comes from a generator seeded by (seed, epoch, key): a replay is exact.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model.resize import cover_crop, cover_crop_box
from train.buckets import Bucket
from dataset.schema import AUDIO_SAMPLE_RATE

_EPS_S = 1e-6


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """Attributes:
    bucket: target shape.
    start_frame: first video frame of the window.
    use_phases: phase captions (stage 2) or the base caption only (stage 1 style).
    """

    bucket: Bucket
    start_frame: int
    use_phases: bool


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, zlib.crc32(key.encode())])


def has_phases(annotation: Mapping[str, Any]) -> bool:
    caption = annotation.get("caption")
    return bool(caption and caption.get("phases"))


def plan_window(
    annotation: Mapping[str, Any], bucket: Bucket, rng: np.random.Generator, *, phase_prob: float, random_start: bool = True
) -> WindowPlan:
    """Pick the window start (uniform over the clip) and the caption mode (phases with `phase_prob`)."""
    slack = int(annotation["video"]["num_frames"]) - bucket.frames
    start = int(rng.integers(0, slack + 1)) if random_start and slack > 0 else 0
    use_phases = bool(rng.random() < phase_prob) and has_phases(annotation)
    return WindowPlan(bucket, start, use_phases)


def window_caption(annotation: Mapping[str, Any], plan: WindowPlan, max_phases: int) -> tuple[tuple[str, ...], list[tuple[float, float]]]:
    """(texts, spans): base caption ("" when the clip has none) then the phases overlapping the window,
    with times relative to the window start, clipped to it; at most `max_phases` of them."""
    caption = annotation.get("caption") or {}
    base = str(caption.get("base") or "")
    if not plan.use_phases:
        return (base,), []
    fps = float(annotation["video"]["fps"])
    t0, dur = plan.start_frame / fps, plan.bucket.frames / fps
    texts, spans = [base], []
    for phase in caption.get("phases", []):
        s, e = float(phase["start_s"]) - t0, float(phase["end_s"]) - t0
        s, e = max(s, 0.0), min(e, dur)
        if e > s + _EPS_S and len(spans) < max_phases:
            texts.append(str(phase["text"]))
            spans.append((s, e))
    return tuple(texts), spans


def resize_crop_box(height: int, width: int, bucket: Bucket) -> tuple[float, int, int]:
    """(scale, top, left) of `model.resize.cover_crop` for the bucket: scale to cover, then centre-crop."""
    scale, _, top, left = cover_crop_box(height, width, bucket.height, bucket.width)
    return scale, top, left


def face_box_in_window(annotation: Mapping[str, Any], bucket: Bucket) -> torch.Tensor:
    """(4,) face box normalised to the cropped frame, NaN when the annotation has none."""
    face = annotation.get("face") or {}
    box = face.get("bbox")
    if not box or len(box) != 4:
        return torch.full((4,), math.nan)
    h, w = int(annotation["video"]["height"]), int(annotation["video"]["width"])
    scale, top, left = resize_crop_box(h, w, bucket)
    x0, y0, x1, y1 = (float(v) for v in box)
    xs = [(x * w * scale - left) / bucket.width for x in (x0, x1)]
    ys = [(y * h * scale - top) / bucket.height for y in (y0, y1)]
    return torch.tensor([xs[0], ys[0], xs[1], ys[1]]).clamp(0.0, 1.0)


def pose_in_window(pose: np.ndarray, annotation: Mapping[str, Any], plan: WindowPlan) -> np.ndarray:
    """(frames, K, 3) keypoints of the window's frames of a clip's pose, normalised to the cropped
    frame the model sees (`cut_window`'s crop); keypoints cropped away become unmeasured."""
    from dataset.pose import crop_pose

    h, w = int(annotation["video"]["height"]), int(annotation["video"]["width"])
    b = plan.bucket
    piece = np.asarray(pose)[plan.start_frame : plan.start_frame + b.frames]
    if piece.shape[0] != b.frames:
        raise ValueError(f"pose has {np.asarray(pose).shape[0]} frames, window needs {plan.start_frame + b.frames}")
    scale, top, left = resize_crop_box(h, w, b)
    return crop_pose(piece, h, w, scale, top, left, b.height, b.width)


def cut_window(frames: torch.Tensor, audio: torch.Tensor, plan: WindowPlan, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded clip -> (video (3, T, H, W) float in [-1, 1], audio (N,) float32 zero-padded to the window).

    Args:
        frames: uint8 (T_clip, H, W, 3).
        audio: float32 (N_clip,) at 16 kHz.
    """
    b = plan.bucket
    if frames.shape[0] < plan.start_frame + b.frames:
        raise ValueError(f"clip has {frames.shape[0]} frames, window needs {plan.start_frame + b.frames}")
    # the sampler prepares its reference image with the same function (model.resize)
    clip = cover_crop(frames[plan.start_frame : plan.start_frame + b.frames], b.height, b.width)  # (T, 3, H, W)
    video = clip.permute(1, 0, 2, 3).contiguous()  # (3, T, H, W)
    first = round(plan.start_frame / fps * AUDIO_SAMPLE_RATE)
    n = round(b.frames / fps * AUDIO_SAMPLE_RATE)
    piece = audio[first : first + n].float()
    if piece.numel() < n:
        piece = F.pad(piece, (0, n - piece.numel()))
    return video, piece
