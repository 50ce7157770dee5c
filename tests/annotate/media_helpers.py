"""Sources with known content, written with PyAV: index-coded frames, flashes and clicks."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def write_source(path, frame_times, *, size=(96, 64), audio_rate=48000, duration=None, flash_at=None, time_base=Fraction(1, 90000)):
    """A video whose frame k shows brightness (k * 7) % 200 + 20 (or white at `flash_at` seconds),
    with frames at the given times (seconds: any spacing, so VFR too), and a mono audio track
    that is silent except a click at `flash_at`. Returns the path."""
    width, height = size
    duration = duration or (frame_times[-1] + 0.1)
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.options = {"preset": "ultrafast", "crf": "10"}
        audio = container.add_stream("aac", rate=audio_rate, layout="mono")
        for k, t in enumerate(frame_times):
            value = 255 if flash_at is not None and abs(t - flash_at) < 1e-6 else (k * 7) % 200 + 20
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), value, np.uint8), format="rgb24")
            frame.pts = int(round(t / time_base))
            frame.time_base = time_base
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        pcm = np.zeros(int(duration * audio_rate), np.float32)
        if flash_at is not None:
            i = int(round(flash_at * audio_rate))
            pcm[i : i + audio_rate // 200] = 0.9  # 5 ms click
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = audio_rate
        for packet in audio.encode(frame):
            container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    path.write_bytes(buf.getvalue())
    return path


def brightness(frames) -> np.ndarray:
    return np.asarray([float(np.asarray(f).mean()) for f in frames])
