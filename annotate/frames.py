"""Frames for the captioner: a clip's frames sampled at a fixed rate, with their times, downscaled."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np

from dataset.media import MediaError


def sample_times(num_frames: int, fps: float, sample_fps: float, max_frames: int) -> list[int]:
    """Frame indices at `sample_fps` (the frame nearest each sample time), at most `max_frames`
    spread evenly over the clip when the rate would give more."""
    if num_frames <= 0:
        return []
    duration = num_frames / fps
    count = max(1, min(max_frames, math.floor(duration * sample_fps + 1e-9)))
    step = duration / count
    # Sample the middle of each interval: the first and last frames are often transition frames.
    return sorted({min(num_frames - 1, round((i + 0.5) * step * fps)) for i in range(count)})


def sample_frames(path: str | Path, sample_fps: float, max_frames: int, max_side: int) -> list[tuple[float, np.ndarray]]:
    """`[(t_seconds, HxWx3 uint8 RGB)]` from a constant-frame-rate clip, long side <= `max_side`."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            num_frames = stream.frames or round(float(stream.duration * stream.time_base) * fps)
            wanted = sample_times(num_frames, fps, sample_fps, max_frames)
            if not wanted:
                raise MediaError(f"{path}: no frames")
            scale = min(1.0, max_side / max(stream.codec_context.width, stream.codec_context.height))
            width = max(2, round(stream.codec_context.width * scale))
            height = max(2, round(stream.codec_context.height * scale))
            out, want = [], set(wanted)
            for index, frame in enumerate(container.decode(stream)):
                if index in want:
                    out.append((index / fps, frame.to_ndarray(format="rgb24", width=width, height=height)))
                if index >= wanted[-1]:
                    break
    except av.error.FFmpegError as err:
        raise MediaError(f"{path}: not decodable: {err}") from None
    if not out:
        raise MediaError(f"{path}: no frames decoded")
    return out
