"""Decode a source onto the 25 fps output timeline (VFR-aware), streaming.

Output frame n stands for time n / fps on the source's own clock; it is the decoded source
frame whose timestamp is nearest to that time. Timestamps, not frame counts, drive the mapping,
so variable-frame-rate sources, 29.97 fps sources and streams starting late all land on the
right output frames. Only two decoded frames are held at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import closing

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter
from dataset.schema import VIDEO_FPS



def decode_ahead(container: av.container.InputContainer, stream: av.video.stream.VideoStream, depth: int = 8) -> Iterator[av.VideoFrame]:
    """Decode in a background thread, `depth` frames ahead (bounded memory), so that FFmpeg's
    decoding (which releases the GIL) overlaps the caller's per-frame Python work."""
    frames: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for frame in container.decode(stream):
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            frames.put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, re-raised there
            frames.put(err)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := frames.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def timeline_frames(
    container: av.container.InputContainer, *, fps: float = VIDEO_FPS, start: int = 0, stop: int | None = None
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
    with closing(decode_ahead(container, stream)) as decoded:  # its thread stops when we do
        for frame in decoded:
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


class Scaler:
    """Frame -> uint8 (H, W, 3) array: libswscale scaling, then display rotation.

    One instance keeps one swscale context alive across frames (`frame.reformat` builds a new
    one per call, which costs 3-6x more per frame at HD sizes).

    Args:
        interpolation: swscale filter name ("AREA" suits downscaling for analysis; None keeps
            FFmpeg's default bicubic, used for output clips).
    """

    def __init__(self, interpolation: str | None = None) -> None:
        self._reformatter = VideoReformatter()
        self._interpolation = Interpolation[interpolation] if interpolation else None

    def __call__(self, frame: av.VideoFrame, *, width: int | None = None, height: int | None = None,
                 fmt: str = "rgb24", rotation: int = 0) -> np.ndarray:
        if rotation in (90, 270) and width and height:
            width, height = height, width  # scale before rotating: swap the target sides
        scaled = self._reformatter.reformat(frame, width=width, height=height, format=fmt, interpolation=self._interpolation)
        array = scaled.to_ndarray()
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
