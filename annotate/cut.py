"""Cut and normalise: frame-accurate 25 fps clips at the configured size, 16 kHz mono audio.

One sequential decode per source serves all of its kept clips in time order; each frame is
scaled by libswscale straight to the scale its clip needs and cropped (or padded), so a clip is
held in memory only at its output size. Video frame n and audio sample n * 640 refer to the same
instant of the source clock, which keeps audio and video in sync to within a frame.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, closing
from typing import Any

import av
import numpy as np

from annotate.config import ClipConfig
from annotate.probe import SourceError
from annotate.sources import open_source
from annotate.timeline import Scaler, timeline_frames
from dataset import media
from dataset.media import encode_mp4, encode_wav
from dataset.schema import AUDIO_SAMPLE_RATE, VIDEO_FPS

SAMPLES_PER_FRAME = AUDIO_SAMPLE_RATE / VIDEO_FPS  # 640


def decode_audio(uri: str) -> tuple[np.ndarray, float]:
    """The whole audio track as 16 kHz mono float32, and the source time of its first sample
    (silence when the source has no audio stream)."""
    with open_source(uri) as handle:
        decoded = media.decode_audio(handle, AUDIO_SAMPLE_RATE)
    return decoded if decoded is not None else (np.zeros(0, np.float32), 0.0)


def audio_slice(audio: np.ndarray, audio_start: float, start_frame: int, num_frames: int) -> np.ndarray:
    """Samples for output frames [start_frame, start_frame + num_frames), zero-padded outside."""
    first = int(round(start_frame * SAMPLES_PER_FRAME - audio_start * AUDIO_SAMPLE_RATE))
    count = int(round(num_frames * SAMPLES_PER_FRAME))
    out = np.zeros(count, np.float32)
    lo, hi = max(first, 0), min(first + count, len(audio))
    if hi > lo:
        out[lo - first : hi - first] = audio[lo:hi]
    return out


class FrameShaper:
    """Turns a decoded frame into the clip's output frame (crop around the face, or pad).

    Args:
        cfg: output size and mode.
        display: (width, height) of the source frame as displayed (after rotation).
        rotation: display rotation in degrees.
        face_box: normalised (x0, y0, x1, y1) of the face in display coordinates (crop mode).
    """

    def __init__(self, cfg: ClipConfig, display: tuple[int, int], rotation: int, face_box: list[float] | None) -> None:
        self.cfg, self.rotation = cfg, rotation
        self.scaler = Scaler()
        width, height = display
        tw, th = cfg.width, cfg.height
        if cfg.mode == "crop" and face_box is not None:
            fx0, fy0, fx1, fy1 = face_box
            crop_h = min((fy1 - fy0) * height * cfg.crop_scale, height)
            crop_w = crop_h * tw / th
            if crop_w > width:
                crop_w, crop_h = width, width * th / tw
            cx, cy = (fx0 + fx1) / 2 * width, (fy0 + fy1) / 2 * height
            x0 = float(np.clip(cx - crop_w / 2, 0, width - crop_w))
            y0 = float(np.clip(cy - crop_h / 2, 0, height - crop_h))
            scale = th / crop_h
            self.scaled = (max(tw, round(width * scale)), max(th, round(height * scale)))
            self.offset = (min(round(x0 * scale), self.scaled[0] - tw), min(round(y0 * scale), self.scaled[1] - th))
            self.pad = None
            # The face box as the clip shows it, for the annotation's `face` block.
            self.face_box = [float(np.clip(v, 0, 1)) for v in (
                (fx0 * width - x0) / crop_w, (fy0 * height - y0) / crop_h,
                (fx1 * width - x0) / crop_w, (fy1 * height - y0) / crop_h)]
        else:
            scale = min(tw / width, th / height)
            sw, sh = max(2, round(width * scale)), max(2, round(height * scale))
            self.scaled, self.offset = (sw, sh), (0, 0)
            self.pad = ((th - sh) // 2, (tw - sw) // 2)
            self.face_box = None
            if face_box is not None:
                px, py = self.pad[1] / tw, self.pad[0] / th
                self.face_box = [px + face_box[0] * sw / tw, py + face_box[1] * sh / th,
                                 px + face_box[2] * sw / tw, py + face_box[3] * sh / th]

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        tw, th = self.cfg.width, self.cfg.height
        array = self.scaler(frame, width=self.scaled[0], height=self.scaled[1], rotation=self.rotation)
        if self.pad is None:
            x, y = self.offset
            return np.ascontiguousarray(array[y : y + th, x : x + tw])
        out = np.zeros((th, tw, 3), np.uint8)
        top, left = self.pad
        out[top : top + array.shape[0], left : left + array.shape[1]] = array
        return out


class CutStage:
    """`__call__(uri, probe, clips) -> iterator of (clip, frames, audio, face_box)` for kept clips.

    Args:
        cfg: output size, mode and quality.
    """

    def __init__(self, cfg: ClipConfig) -> None:
        self.cfg = cfg

    def __call__(self, uri: str, probe: dict[str, Any], clips: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], bytes, bytes, list[float] | None]]:
        kept = sorted((c for c in clips if c["status"] == "ok"), key=lambda c: c["start"])
        if not kept:
            return
        rotation = probe["rotation"]
        display = (probe["height"], probe["width"]) if rotation in (90, 270) else (probe["width"], probe["height"])
        audio, audio_start = decode_audio(uri)
        pending = iter(kept)
        clip = next(pending)
        shaper = FrameShaper(self.cfg, display, rotation, clip["face"]["bbox"] if clip["face"] else None)
        frames: list[np.ndarray] = []
        try:
            with ExitStack() as stack:
                handle = stack.enter_context(open_source(uri))
                container = stack.enter_context(av.open(handle))
                seek_s = max(clip["start"] / VIDEO_FPS - 1.0, 0.0)
                if seek_s > 0:  # lands on the keyframe before; earlier frames are skipped below
                    container.seek(int(seek_s / container.streams.video[0].time_base), stream=container.streams.video[0])
                # closing(): the decode-ahead thread must stop before the container closes, also
                # when this generator returns early (else FFmpeg's close waits on it forever).
                frames_in = stack.enter_context(closing(timeline_frames(container, start=clip["start"], stop=kept[-1]["stop"])))
                for n, frame in frames_in:
                    if n < clip["start"]:
                        continue
                    frames.append(shaper(frame))
                    if n + 1 == clip["stop"]:
                        yield self._finish(clip, frames, audio, audio_start, shaper)
                        frames = []
                        clip = next(pending, None)
                        if clip is None:
                            return
                        shaper = FrameShaper(self.cfg, display, rotation, clip["face"]["bbox"] if clip["face"] else None)
        except av.error.FFmpegError as err:
            raise SourceError("decode_error", f"while cutting clip {clip['index'] if clip else '?'}: {err}") from None
        if clip is not None:
            raise SourceError("truncated", f"the source ended before clip {clip['index']} (frames {clip['start']}-{clip['stop']})")

    def _finish(self, clip, frames, audio, audio_start, shaper) -> tuple[dict[str, Any], bytes, bytes, list[float] | None]:
        video = np.stack(frames)
        pcm = audio_slice(audio, audio_start, clip["start"], len(frames))
        mp4 = encode_mp4(video, pcm, fps=VIDEO_FPS, crf=self.cfg.crf)
        return clip, mp4, encode_wav(pcm), shaper.face_box
