"""Face crops for SyncNet / identity from per-frame face boxes, as syncnet_python's `crop_video`.

syncnet_python crops a face track like this: box half-size s = max(w, h) / 2 and centre, each
median-filtered over time (kernel 13); the frame is padded with grey (110) by s·(1 + 2·cs); the
crop spans [cy - s, cy + s·(1 + 2·cs)] vertically and cx ± s·(1 + cs) horizontally (cs = crop
scale 0.4, so mouth and chin are included) and is resized to 224×224. `make_crop_faces(detect)`
turns any detector returning boxes (e.g. `annotate.face_detector.FaceDetector.detect`, whose faces
carry a normalised `.box`) into the `crop_faces` hook that `evaluation.sync` and `.identity` take.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F

CROP_SIZE = 224
PAD_VALUE = 110  # syncnet_python pads with this grey


def track_crops(frames: np.ndarray, boxes: np.ndarray, *, crop_scale: float = 0.4, smooth: int = 13) -> np.ndarray:
    """uint8 (T, H, W, 3) frames + (T, 4) pixel boxes (x0, y0, x1, y1) -> uint8 (T, 224, 224, 3) crops."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(frames), 4):
        raise ValueError(f"need one (x0, y0, x1, y1) box per frame, got {boxes.shape} for {len(frames)} frames")
    kernel = min(smooth, len(frames) - (1 - len(frames) % 2))  # medfilt needs an odd kernel <= length
    size = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy, cx = (boxes[:, 1] + boxes[:, 3]) / 2, (boxes[:, 0] + boxes[:, 2]) / 2
    if kernel >= 3:
        size, cy, cx = (scipy.signal.medfilt(v, kernel_size=kernel) for v in (size, cy, cx))
    crops = []
    for frame, s, y, x in zip(frames, size, cy, cx):
        pad = int(s * (1 + 2 * crop_scale))
        padded = np.pad(frame, ((pad, pad), (pad, pad), (0, 0)), constant_values=PAD_VALUE)
        my, mx = y + pad, x + pad
        face = padded[int(my - s) : int(my + s * (1 + 2 * crop_scale)), int(mx - s * (1 + crop_scale)) : int(mx + s * (1 + crop_scale))]
        t = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1)[None].float()
        t = F.interpolate(t, size=(CROP_SIZE, CROP_SIZE), mode="bilinear", align_corners=False)  # cv2.resize default
        crops.append(t[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy())
    return np.stack(crops)


def make_crop_faces(detect: Callable[[np.ndarray], Sequence[Any]], *, crop_scale: float = 0.4) -> Callable[[np.ndarray], np.ndarray]:
    """A `crop_faces(frames)` hook from `detect(frame) -> faces` (best first, `.box` normalised x0, y0, x1, y1).

    Frames without a detection reuse the nearest detected frame's box; a clip with none is an error.
    """

    def crop_faces(frames: np.ndarray) -> np.ndarray:
        height, width = frames.shape[1:3]
        found = [detect(frame) for frame in frames]
        have = [i for i, faces in enumerate(found) if faces]
        if not have:
            raise ValueError(f"no face detected in any of {len(frames)} frames")
        boxes = np.empty((len(frames), 4))
        for i in range(len(frames)):
            nearest = min(have, key=lambda j: abs(j - i))
            x0, y0, x1, y1 = found[nearest][0].box
            boxes[i] = (x0 * width, y0 * height, x1 * width, y1 * height)
        return track_crops(frames, boxes, crop_scale=crop_scale)

    return crop_faces
