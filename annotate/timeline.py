"""Decode a source onto the 25 fps output timeline (VFR-aware), streaming.

Output frame n stands for time n / fps on the source's own clock; it is the decoded source
frame whose timestamp is nearest to that time. Timestamps, not frame counts, drive the mapping,
so variable-frame-rate sources, 29.97 fps sources and streams starting late all land on the
right output frames. Only two decoded frames are held at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import av
import numpy as np

OUTPUT_FPS = 25.0


def timeline_frames(
    container: av.container.InputContainer, *, fps: float = OUTPUT_FPS, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield `(n, frame)` for output frames `start <= n < stop` (all frames when `stop` is None).

    The caller may have seeked the container before `start`; frames earlier than needed are
    skipped. After the last decoded frame, output frames within half a source frame are still
    filled, so a clip ending at the stream's end keeps its last frame.
    """
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    n = start
    prev: av.VideoFrame | None = None
    prev_t = 0.0
    step = 1.0 / float(stream.average_rate or fps)
    for frame in container.decode(stream):
        if frame.time is None:
            continue
        t = float(frame.time)
        while stop is None or n < stop:
            target = n / fps
            if t < target:
                break
            use_prev = prev is not None and (target - prev_t) < (t - target)
            yield n, prev if use_prev else frame  # type: ignore[misc]
            n += 1
        if stop is not None and n >= stop:
            return
        prev, prev_t = frame, t
    while prev is not None and (stop is None or n < stop) and n / fps <= prev_t + step / 2 + 1e-9:
        yield n, prev
        n += 1


def to_array(frame: av.VideoFrame, *, width: int | None = None, height: int | None = None, fmt: str = "rgb24", rotation: int = 0) -> np.ndarray:
    """Frame -> uint8 (H, W, 3) array, scaled by libswscale, then rotated for display."""
    if rotation in (90, 270) and width and height:
        width, height = height, width  # scale before rotating: swap the target sides
    array = frame.reformat(width=width, height=height, format=fmt).to_ndarray()
    if rotation:
        # the display matrix rotates counter-clockwise by `rotation` degrees
        array = np.ascontiguousarray(np.rot90(array, k=rotation // 90))
    return array


def scaled_size(width: int, height: int, target_width: int, rotation: int = 0) -> tuple[int, int]:
    """(w, h) with `target_width` columns after rotation, aspect kept, both even."""
    if rotation in (90, 270):
        width, height = height, width
    target_height = max(2, int(round(height * target_width / width / 2)) * 2)
    return target_width, target_height
