"""Encode and decode the media members of a shard with PyAV (bundled FFmpeg, no ffmpeg CLI).

The contract (DESIGN.md §3): `<key>.mp4` is H.264 yuv420p at 25 fps with AAC 16 kHz mono,
`<key>.wav` is 16 kHz mono PCM16. Frames are uint8 (T, H, W, 3) RGB; audio is float32 in [-1, 1].
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import av
import cv2
import numpy as np

from dataset.errors import UserError
from dataset.schema import AUDIO_SAMPLE_RATE, VIDEO_FPS


class MediaError(UserError):
    """Media bytes that cannot be decoded (or encoded); the message says why."""


@dataclass(frozen=True, slots=True)
class VideoInfo:
    num_frames: int
    width: int
    height: int
    fps: float
    has_audio: bool


def encode_wav(samples: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """Mono float32 in [-1, 1] (or int16) -> PCM16 WAV bytes."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise MediaError(f"audio must be mono (1-D), got shape {samples.shape}")
    if samples.dtype != np.int16:
        samples = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    """PCM16 mono WAV bytes -> (float32 samples in [-1, 1], sample rate)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise MediaError(
                    f"WAV must be mono PCM16, got {wav.getnchannels()} channel(s), {8 * wav.getsampwidth()}-bit"
                )
            rate = wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as err:
        raise MediaError(f"not a readable WAV file: {err}") from None
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate


# BT.601 limited range, the matrix swscale uses for yuv420p (rows: Cb, Cr; columns: R, G, B).
_CHROMA = np.array([[-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], np.float32) / 255.0


def rgb_to_i420(frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> (H*3/2, W) I420 planes (Y, then Cb, then Cr), BT.601 limited range.

    Luma is OpenCV's (within 0.02 of swscale's on average); chroma is taken from each 2x2 block's
    mean colour. OpenCV's own I420 chroma samples single pixels (about 14 levels off swscale's on
    noise); the block mean is 3 off, swscale filtering over a few more rows.
    """
    h, w = frame.shape[:2]
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8 or h % 2 or w % 2:
        raise MediaError(f"I420 needs a uint8 (H, W, 3) frame of even size, got {frame.dtype} {frame.shape}")
    if out is None:
        out = np.empty((h * 3 // 2, w), np.uint8)
    frame = np.ascontiguousarray(frame)
    cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420, dst=out)  # fills Y (and a chroma we overwrite)
    block = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA).astype(np.float32)
    chroma = np.rint(block @ _CHROMA.T + 128.0).clip(0, 255).astype(np.uint8)  # (h/2, w/2, 2)
    quarter = (h // 2) * (w // 2)
    planes = out[h:].reshape(-1)
    planes[:quarter] = chroma[..., 0].reshape(-1)
    planes[quarter:] = chroma[..., 1].reshape(-1)
    return out


def encode_mp4(
    frames: np.ndarray,
    audio: np.ndarray | None = None,
    *,
    fps: float = VIDEO_FPS,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    crf: int = 20,
) -> bytes:
    """uint8 (T, H, W, 3) RGB frames (+ mono float32 audio) -> H.264 yuv420p / AAC mp4 bytes."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise MediaError(f"H.264 yuv420p needs even width and height, got {frames.shape[2]}x{frames.shape[1]}")
    buf = io.BytesIO()
    rate = Fraction(fps).limit_denominator(1001)
    # bitexact: no encoder version or creation time in the file, so equal input gives equal bytes.
    with av.open(buf, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height = frames.shape[2], frames.shape[1]
        vstream.pix_fmt = "yuv420p"
        # Deterministic output: one thread, no scene-cut dependent GOP decisions.
        vstream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "flags": "+bitexact"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
            astream.options = {"flags": "+bitexact"}
        # RGB -> I420 here, not in PyAV's swscale: on one CI machine the same black 32x32 frame
        # came out with a different last macroblock on each call (never seen on ours). x264 runs
        # single-threaded and bit-exact, so the conversion before it was the part left to vary.
        yuv = np.empty((frames.shape[1] * 3 // 2, frames.shape[2]), np.uint8)
        for frame in frames:
            for packet in vstream.encode(av.VideoFrame.from_ndarray(rgb_to_i420(frame, out=yuv), format="yuv420p")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            _mux_aac(container, astream, audio, sample_rate)
    return buf.getvalue()


def _mux_aac(container, astream, audio: np.ndarray, sample_rate: int) -> None:
    pcm = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    aframe = av.AudioFrame.from_ndarray(pcm, format="flt", layout="mono")
    aframe.sample_rate = sample_rate
    # A timestamped first frame lets the AAC encoder mark its 1024 priming samples and the muxer
    # write the edit list that makes decoders skip them; without it every decoder (PyAV and
    # ffmpeg alike) returned the audio 64 ms (1.6 frames at 25 fps) late against the video.
    aframe.pts = 0
    aframe.time_base = Fraction(1, sample_rate)
    for packet in astream.encode(aframe):
        container.mux(packet)
    for packet in astream.encode():
        container.mux(packet)


def replace_audio(data: bytes, audio: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """An mp4 with its video stream copied packet for packet (no re-encode) and `audio` as its AAC track."""
    buf = io.BytesIO()
    try:
        with av.open(io.BytesIO(data)) as src, av.open(buf, mode="w", format="mp4", options={"fflags": "+bitexact"}) as dst:
            if not src.streams.video:
                raise MediaError("no video stream")
            vin = src.streams.video[0]
            vout = dst.add_stream_from_template(vin)
            astream = dst.add_stream("aac", rate=sample_rate, layout="mono")
            astream.options = {"flags": "+bitexact"}
            for packet in src.demux(vin):
                if packet.dts is None:  # the demuxer's end-of-stream flush packet
                    continue
                packet.stream = vout
                dst.mux(packet)
            _mux_aac(dst, astream, audio, sample_rate)
    except av.error.FFmpegError as err:
        raise MediaError(f"not a readable mp4: {err}") from None
    return buf.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 5) -> bytes:
    """uint8 (H, W, 3) RGB -> JPEG bytes (FFmpeg's mjpeg encoder; `quality` is its qscale, 2 best .. 31)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise MediaError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height = image.shape[1], image.shape[0]
    codec.pix_fmt = "yuvj444p"
    codec.time_base = Fraction(1, 25)
    codec.flags |= av.codec.context.Flags.qscale
    codec.global_quality = quality * 118  # FF_QP2LAMBDA: the encoder reads qscale through this
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24").reformat(format="yuvj444p")
    frame.pts = 0
    return b"".join(bytes(p) for p in [*codec.encode(frame), *codec.encode(None)])


def probe_mp4(data: bytes) -> VideoInfo:
    """Stream facts without decoding every frame (frame count from the container)."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            return VideoInfo(
                num_frames=stream.frames,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=float(stream.average_rate or 0.0),
                has_audio=bool(container.streams.audio),
            )
    except av.error.FFmpegError as err:
        raise MediaError(f"not a readable mp4: {err}") from None


def decode_audio(source: bytes | BinaryIO, sample_rate: int = AUDIO_SAMPLE_RATE) -> tuple[np.ndarray, float] | None:
    """The first audio stream of any container PyAV reads, as mono float32 at `sample_rate`, with
    the source time of its first sample; None when there is no audio stream."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        with av.open(handle) as container:
            if not container.streams.audio:
                return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks: list[np.ndarray] = []
            start = None
            for frame in container.decode(container.streams.audio[0]):
                if start is None and frame.time is not None:
                    start = float(frame.time)
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]  # flush
    except av.error.FFmpegError as err:
        raise MediaError(f"audio not decodable: {err}") from None
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, start or 0.0


def decode_mp4_timed(data: bytes) -> tuple[np.ndarray, np.ndarray, float]:
    """mp4 bytes -> (uint8 (T, H, W, 3) RGB frames, (T,) presentation times in seconds, average fps).

    Times come from each frame's timestamp (variable frame rate files keep theirs); a frame without
    one gets the previous time plus one average frame duration."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.video:
                raise MediaError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = float(stream.average_rate or stream.guessed_rate or 0.0) or float(VIDEO_FPS)
            frames, times = [], []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.time) if frame.time is not None else (times[-1] + 1.0 / fps if times else 0.0))
    except av.error.FFmpegError as err:
        raise MediaError(f"not a decodable mp4: {err}") from None
    if not frames:
        raise MediaError("mp4 has a video stream but no decodable frames")
    return np.stack(frames), np.asarray(times, dtype=np.float64), fps


def decode_mp4(data: bytes) -> np.ndarray:
    """mp4 bytes -> uint8 (T, H, W, 3) RGB frames, every frame decoded."""
    return decode_mp4_timed(data)[0]
