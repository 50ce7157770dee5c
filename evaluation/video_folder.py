"""Read a folder of evaluation videos: `<key>.mp4` (+ `<key>.wav`, `<key>.png|jpg`, `<key>.json`).

Generated and reference folders are matched by key (file stem). Audio comes from `<key>.wav` when
present, else from the mp4's audio stream; either way resampled to 16 kHz mono with PyAV (what
syncnet_python's `ffmpeg -ac 1 -ar 16000` gives). `read_video` keeps each frame's timestamp so
`resample_fps` can bring any frame rate to SyncNet's 25 fps. The identity
reference is `<key>.png`/`.jpg` in the reference folder, else the reference video's first frame.
Phases come from the annotation JSON (`caption.phases`, DESIGN §3), the phase text being the label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataset.media import MediaError, decode_audio, decode_mp4, decode_mp4_timed
from dataset.schema import AUDIO_SAMPLE_RATE



@dataclass(frozen=True, slots=True)
class Video:
    """Decoded frames with their presentation times (seconds) and the stream's average frame rate."""

    frames: np.ndarray  # uint8 (T, H, W, 3) RGB
    times: np.ndarray  # (T,) float64
    fps: float


def list_videos(folder: str | Path) -> dict[str, Path]:
    """{key: path} of the `*.mp4` files directly in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"video folder not found: {folder}")
    return {p.stem: p for p in sorted(folder.glob("*.mp4"))}


def read_frames(path: Path) -> np.ndarray:
    """uint8 (T, H, W, 3) RGB; errors name the file."""
    try:
        return decode_mp4(path.read_bytes())
    except MediaError as err:
        raise MediaError(f"{path}: {err}") from None


def read_video(path: Path) -> Video:
    """Frames, their times and the frame rate; errors name the file."""
    try:
        frames, times, fps = decode_mp4_timed(path.read_bytes())
    except MediaError as err:
        raise MediaError(f"{path}: {err}") from None
    return Video(frames, times, fps)


def resample_fps(video: Video, fps: float) -> np.ndarray:
    """Frames at a constant `fps`: output frame i shows the input frame nearest in time to t0 + i/fps
    (what `ffmpeg -r 25` and its fps filter do, up to tie-breaking); the duration is kept, so
    frames are dropped (30 -> 25 fps) or repeated (24 -> 25 fps). Variable frame rates work too."""
    if len(video.frames) == 0:
        return video.frames
    times = video.times - video.times[0]
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / video.fps
    want = np.arange(max(1, int(round((times[-1] + step) * fps)))) / fps
    # fractional position of each wanted time between its neighbouring frames; ties go to the earlier one
    position = np.interp(want, times, np.arange(len(times)))
    return video.frames[np.ceil(position - 0.5).astype(int)]


def decode_mp4_audio(data: bytes, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray | None:
    """The first audio stream of mp4 bytes as float32 mono at `sample_rate`, or None without audio."""
    decoded = decode_audio(data, sample_rate)
    return None if decoded is None else decoded[0]


def read_audio(video: Path) -> tuple[np.ndarray, int] | None:
    """(mono float32, rate) from `<key>.wav` beside the video, else from the mp4; None if neither has audio."""
    wav = video.with_suffix(".wav")
    if wav.is_file():
        try:
            decoded = decode_audio(wav.read_bytes(), AUDIO_SAMPLE_RATE)
        except MediaError as err:
            raise MediaError(f"{wav}: {err}") from None
        if decoded is None:
            raise MediaError(f"{wav}: no audio stream")
        return decoded[0], AUDIO_SAMPLE_RATE
    try:
        audio = decode_mp4_audio(video.read_bytes())
    except MediaError as err:
        raise MediaError(f"{video}: {err}") from None
    return None if audio is None else (audio, AUDIO_SAMPLE_RATE)


def read_reference_image(reference_dir: Path, key: str, reference_frames: np.ndarray | None) -> tuple[np.ndarray, str]:
    """(uint8 (H, W, 3) image, where it came from)."""
    for suffix in (".png", ".jpg", ".jpeg"):
        path = reference_dir / f"{key}{suffix}"
        if path.is_file():
            from PIL import Image

            with Image.open(path) as img:
                return np.asarray(img.convert("RGB")), path.name
    if reference_frames is None:
        raise FileNotFoundError(f"no reference image {key}.png/.jpg and no reference video for {key} in {reference_dir}")
    return reference_frames[0], f"{key}.mp4 frame 0"


def read_phases(reference_dir: Path, key: str) -> list[dict[str, Any]] | None:
    """[{start_s, end_s, label, text}] from `<key>.json` (annotation schema v1), or None without one.
    The label is the phase's action label when it has one, else its text."""
    path = reference_dir / f"{key}.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        phases = doc["caption"]["phases"] if "caption" in doc else doc["phases"]
        return [{"start_s": float(p["start_s"]), "end_s": float(p["end_s"]), "label": str(p.get("label", p.get("text"))),
                 "text": str(p.get("text", p.get("label")))} for p in phases]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot read phases ({type(err).__name__}: {err})") from None
