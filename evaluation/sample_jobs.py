"""Sampling jobs: where prompts come from (one prompt, a JSONL prompt file, a benchmark folder) and
where videos go (`OUT/<key>.mp4` with the audio muxed in + `OUT/<key>.json` with the caption and settings).

Prompt file (JSONL, one job per line; relative paths are relative to the file's folder):
    {"key": "demo_0000", "image": "ref.png", "audio": "speech.wav",
     "prompt": "A man talks. | 0-1.5: nods | 1.5-3: raises the right hand", "seed": 7, "num_frames": 49}
`prompt` is the compact string or a {"base", "phases"} object; key, seed and num_frames are optional;
"pose": "driving.pose.npy" (per-frame keypoints, `dataset.pose` layout) drives a `model.pose` checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataset.atomic import atomic_write_bytes
from dataset.errors import UserError
from evaluation.prompt import parse_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class SampleJob:
    """One video to generate. seed None = SampleConfig.seed + index; num_frames 0 = from the audio;
    pose: a `pose.npy` of per-frame keypoints (DiTs with `model.pose`), None = pose-free;
    face_box: the reference image's face (x0, y0, x1, y1) in [0, 1] of the image as given (DiTs with
    `model.face_identity`), None = none."""

    key: str
    caption: dict[str, Any]
    image: Path | None
    audio: Path
    seed: int | None = None
    num_frames: int = 0
    pose: Path | None = None
    face_box: tuple[float, float, float, float] | None = None


def _path(value: Any, base: Path, where: str, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: '{what}' must be a file path, got {value!r}")
    path = Path(value) if Path(value).is_absolute() else base / value
    if not path.is_file():
        raise FileNotFoundError(f"{where}: {what} file not found: {path}")
    return path


def jobs_from_jsonl(path: str | Path) -> list[SampleJob]:
    """Read a prompt file; every error names the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    jobs, keys = [], set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{where}: invalid JSON ({err})") from None
        if not isinstance(doc, dict) or "prompt" not in doc or "audio" not in doc:
            raise UserError(f"{where}: each line needs at least 'prompt' and 'audio' (and 'image')")
        key = str(doc.get("key", f"sample_{len(jobs):04d}"))
        if key in keys or "/" in key:
            raise UserError(f"{where}: key {key!r} is repeated or contains '/'")
        keys.add(key)
        jobs.append(SampleJob(
            key=key, caption=parse_prompt(doc["prompt"], where),
            image=_path(doc["image"], path.parent, where, "image") if doc.get("image") else None,
            audio=_path(doc["audio"], path.parent, where, "audio"),
            seed=None if doc.get("seed") is None else int(doc["seed"]), num_frames=int(doc.get("num_frames", 0)),
            pose=_path(doc["pose"], path.parent, where, "pose") if doc.get("pose") else None,
            face_box=parse_face_box(doc["face_box"], where) if doc.get("face_box") is not None else None,
        ))
    if not jobs:
        raise UserError(f"{path}: no prompts")
    return jobs


def parse_face_box(value: Any, where: str) -> tuple[float, float, float, float]:
    """x0, y0, x1, y1 in [0, 1] (a list, or text "x0,y0,x1,y1") with x0 < x1 and y0 < y1."""
    try:
        parts = value.split(",") if isinstance(value, str) else list(value)
        box = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        box = ()
    if len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box) or box[0] >= box[2] or box[1] >= box[3]:
        raise UserError(f"{where}: face_box must be x0,y0,x1,y1 in [0, 1] of the reference image with x0 < x1 and y0 < y1, "
                        f"got {value!r}")
    return box  # type: ignore[return-value]


def read_image(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of an image file, or the first frame of a video file."""
    if path.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm"):
        from evaluation.video_folder import read_frames

        return read_frames(path)[0]
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(f"{path}: not a readable image ({err})") from None


def read_pose_file(path: Path) -> np.ndarray:
    """(F, K, 3) float32 keypoints of a `pose.npy` file (`dataset.pose` layout; never pickle)."""
    from dataset.pose import PoseError, decode_pose

    try:
        return decode_pose(Path(path).read_bytes())
    except PoseError as err:
        raise UserError(f"{path}: {err}") from None


def read_audio_file(path: Path) -> np.ndarray:
    """Any audio (or video-with-audio) file PyAV reads -> float32 mono 16 kHz."""
    from dataset.media import MediaError
    from evaluation.video_folder import decode_mp4_audio

    try:
        audio = decode_mp4_audio(path.read_bytes())
    except MediaError as err:
        raise UserError(f"{path}: {err}") from None
    if audio is None or not audio.size:
        raise UserError(f"{path}: no audio stream")
    return audio


def write_sample(out_dir: Path, job: SampleJob, frames: np.ndarray, audio: np.ndarray, *, fps: float, crf: int,
                 settings: dict[str, Any]) -> Path:
    """OUT/<key>.mp4 (H.264 + AAC) and OUT/<key>.json (annotation-style caption + video facts + settings)."""
    from dataset.media import encode_mp4

    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / f"{job.key}.mp4"
    atomic_write_bytes(video, encode_mp4(frames, audio, fps=fps, crf=crf))
    doc = {"key": job.key, "caption": job.caption,
           "video": {"fps": fps, "num_frames": int(frames.shape[0]), "width": int(frames.shape[2]), "height": int(frames.shape[1]),
                     "duration_s": round(frames.shape[0] / fps, 6)},
           "sample": {"image": str(job.image) if job.image else None, "audio": str(job.audio), **settings}}
    atomic_write_bytes(out_dir / f"{job.key}.json", (json.dumps(doc, indent=2) + "\n").encode())
    return video


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use `n` intra-op threads inside the block (0: unchanged), then restore the previous count."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_jobs(sampler: Any, jobs: Sequence[SampleJob], out_dir: str | Path, *, progress: bool = True,
             skip_existing: bool = False) -> list[Path]:
    """Generate every job with a loaded `AvatarSampler`; returns the mp4 paths."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    bar: Iterable[tuple[int, SampleJob]] = enumerate(jobs)
    if progress and len(jobs) > 1:
        bar = tqdm(bar, total=len(jobs), desc="videos", unit="video")
    with torch_threads(sampler.cfg.threads):
        return [_run_job(sampler, job, i, out_dir, progress=progress, skip_existing=skip_existing) for i, job in bar]


def _run_job(sampler: Any, job: SampleJob, index: int, out_dir: Path, *, progress: bool, skip_existing: bool) -> Path:
    """Sample one job (seed: the job's own, else SampleConfig.seed + index) and write it."""
    import dataclasses

    from dataset.config_loader import config_to_dict
    from evaluation.long_video import plan_windows

    cfg = sampler.cfg
    target = out_dir / f"{job.key}.mp4"
    if skip_existing and target.is_file():
        return target
    seed = cfg.seed + index if job.seed is None else job.seed
    image = read_image(job.image) if job.image else None
    pose = read_pose_file(job.pose) if job.pose else None
    frames, audio = sampler(job.caption, image, read_audio_file(job.audio), seed=seed,
                            num_frames=job.num_frames, progress=progress, pose=pose, face_box=job.face_box)
    windows = plan_windows(frames.shape[0], cfg.window_frames, cfg.motion_frames, sampler.vae.temporal_stride)
    settings = {"seed": seed, "reference_mode": sampler.mode, "windows": [[w.start, w.end] for w in windows],
                "config": config_to_dict(dataclasses.replace(cfg, seed=seed))}
    if job.pose:
        settings["pose"] = str(job.pose)
    if job.face_box:
        settings["face_box"] = list(job.face_box)
    path = write_sample(out_dir, job, frames, audio, fps=cfg.fps, crf=cfg.crf, settings=settings)
    log.info("%s: %d frames -> %s", job.key, frames.shape[0], path)
    return path
