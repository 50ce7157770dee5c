"""Probe stage (PyAV): what a source holds, and a clean reason when it cannot be used.

Failed (broken input): `empty_file`, `not_media` (not a container FFmpeg can read, including
truncated files that lost their index), `no_video_stream`, `zero_length`, `unreadable`.
Rejected (valid media, unsuitable): `no_audio`, `too_short`.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Any

import av

from annotate.config import ProbeConfig
from annotate.sources import open_source


class SourceError(Exception):
    """A source the pipeline cannot use; `status` is "failed" or "rejected"."""

    def __init__(self, reason: str, detail: str, status: str = "failed") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.status = reason, detail, status


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeResult:
    duration_s: float
    fps: float  # average frame rate
    variable_frame_rate: bool
    width: int  # display width: the coded width times the sample aspect ratio (non-square pixels)
    height: int
    rotation: int  # degrees, as the display matrix says; applied when frames are normalised
    has_audio: bool
    audio_rate: int | None
    coded_width: int = 0  # the stored width (equal to `width` for square pixels)
    sample_aspect_ratio: str = "1:1"  # pixel width : height, as the stream declares it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def probe(uri: str) -> ProbeResult:
    """Stream facts of a source; raises SourceError (failed) for anything that is not usable media."""
    try:
        handle = open_source(uri)
    except OSError as err:
        raise SourceError("unreadable", str(err)) from None
    with handle:
        if handle.seek(0, 2) == 0:
            raise SourceError("empty_file", "the file has 0 bytes")
        handle.seek(0)
        try:
            with av.open(handle, metadata_errors="ignore") as container:
                return _describe(container)
        except av.error.FFmpegError as err:
            raise SourceError("not_media", f"FFmpeg cannot read it: {err}") from None


def _sample_aspect_ratio(video: av.video.stream.VideoStream) -> Fraction:
    """The stream's pixel aspect ratio (container first, then the codec's; 1 when unset or 0:1)."""
    for sar in (video.sample_aspect_ratio, video.codec_context.sample_aspect_ratio):
        if sar is not None and sar > 0:
            return Fraction(sar)
    return Fraction(1)


def display_width(coded_width: int, sar: Fraction) -> int:
    """The width at which a frame of non-square pixels displays undistorted (even, as H.264 needs)."""
    if sar == 1:
        return coded_width
    return max(2, int(round(coded_width * sar / 2)) * 2)


def _describe(container: av.container.InputContainer) -> ProbeResult:
    if not container.streams.video:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "none"
        raise SourceError("no_video_stream", f"streams present: {kinds}")
    video = container.streams.video[0]
    duration = 0.0
    if video.duration is not None and video.time_base is not None:
        duration = float(video.duration * video.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    if duration <= 0:
        raise SourceError("zero_length", "the video stream has no duration")
    average = float(video.average_rate or video.guessed_rate or 0)
    base = float(video.base_rate or 0)
    rotation = 0
    for frame in container.decode(video):  # the first frame carries the display matrix
        rotation = int(round(frame.rotation or 0)) % 360
        break
    audio = container.streams.audio[0] if container.streams.audio else None
    coded_width, height = video.codec_context.width, video.codec_context.height
    sar = _sample_aspect_ratio(video)
    return ProbeResult(
        duration_s=duration,
        fps=average,
        variable_frame_rate=bool(base and average and abs(base - average) > 0.01),
        width=display_width(coded_width, sar),
        height=height,
        coded_width=coded_width,
        sample_aspect_ratio=f"{sar.numerator}:{sar.denominator}",
        rotation=rotation,
        has_audio=audio is not None,
        audio_rate=audio.rate if audio is not None else None,
    )


class ProbeStage:
    """`__call__(row) -> row` adds `probe` (dict) or raises SourceError."""

    def __init__(self, cfg: ProbeConfig) -> None:
        self.cfg = cfg

    def __call__(self, uri: str) -> dict[str, Any]:
        result = probe(uri)
        if self.cfg.require_audio and not result.has_audio:
            raise SourceError("no_audio", "the source has no audio stream", status="rejected")
        if result.duration_s < self.cfg.min_duration_s:
            raise SourceError(
                "too_short", f"{result.duration_s:.2f}s < probe.min_duration_s={self.cfg.min_duration_s}", status="rejected"
            )
        return result.to_dict()
