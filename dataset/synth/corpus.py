"""Generate a synthetic corpus: `OUT/raw/synth_NNNNN.mp4` plus `OUT/truth.jsonl` (see `truth.py`).

Videos are planned from (seed, index) alone and rendered in worker processes; the output does not
depend on the number of workers or their order. Files are written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from dataset.atomic import atomic_open, atomic_write_bytes
from dataset.errors import UserError
from dataset.synth.plan import PROFILES

_RESOLUTION = re.compile(r"^(\d+)x(\d+)$")
_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class SynthConfig:
    """What `actavatar synth` generates.

    Args:
        out: corpus folder; videos go to `out/raw/`, ground truth to `out/truth.jsonl`.
        videos: number of raw videos.
        seed: corpus seed; the same seed gives identical files.
        min_duration, max_duration: range of each raw video's length in seconds.
        resolutions: comma-separated WIDTHxHEIGHT list; video i uses entry i modulo its length.
        workers: processes rendering videos in parallel (0: one per CPU, at most `videos`).
        crf, preset: x264 quality and speed.
        overwrite: replace an existing corpus in `out` (only its synth files are touched).
        profile: "default" (varied: negatives, textured walls, fades, several frame and sample
            rates, head and arm actions) or "mechanism" (the `actavatar bench mechanism` corpus:
            talking shots only on plain grey walls, hard cuts, 25 fps / 16 kHz, the five arm
            actions only, balanced, 1-2 s each, idle gaps of 0.6-1.2 s between some of them).
    """

    out: str
    videos: int = 10
    seed: int = 0
    min_duration: float = 25.0
    max_duration: float = 35.0
    resolutions: str = "640x360,854x480,960x540,1280x720"
    workers: int = 0
    crf: int = 21
    preset: str = "superfast"
    overwrite: bool = False
    profile: str = "default"

    def __post_init__(self) -> None:
        if not str(self.out).strip():
            raise UserError(f"out must be a folder path, got {self.out!r}")
        if self.videos < 1:
            raise UserError(f"videos must be >= 1, got {self.videos}")
        if self.seed < 0:
            raise UserError(f"seed must be >= 0, got {self.seed}")
        if self.min_duration < 4.0:
            raise UserError(f"min_duration must be >= 4 seconds, got {self.min_duration}")
        if self.max_duration < self.min_duration or self.max_duration > 600:
            raise UserError(f"max_duration must be in [min_duration={self.min_duration}, 600], got {self.max_duration}")
        if self.workers < 0:
            raise UserError(f"workers must be >= 0, got {self.workers}")
        if not 0 <= self.crf <= 51:
            raise UserError(f"crf must be in [0, 51], got {self.crf}")
        if self.profile not in PROFILES:
            raise UserError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.preset not in _PRESETS:
            raise UserError(f"preset must be one of {', '.join(_PRESETS)}, got {self.preset!r}")
        self.resolution_list()  # validates

    def resolution_list(self) -> tuple[tuple[int, int], ...]:
        """`resolutions` parsed to (width, height) pairs."""
        out = []
        for item in str(self.resolutions).split(","):
            m = _RESOLUTION.match(item.strip())
            if not m:
                raise UserError(f"resolutions: each entry must look like 640x360, got {item.strip()!r}")
            w, h = int(m.group(1)), int(m.group(2))
            # Two avatars side by side need a wide frame (16:9 is the reference).
            if w % 2 or h % 2 or h < 96 or not 1.6 <= w / h <= 2.4:
                raise UserError(f"resolutions: {item.strip()!r} must have even sides, height >= 96 and a "
                                 "landscape aspect ratio between 1.6 and 2.4 (16:9 = 1.78)")
            out.append((w, h))
        return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class CorpusSummary:
    videos: int
    shots: int
    seconds: float
    out: Path


# One renderer and one espeak cache per worker process, built on first use.
_WORKER: dict[str, Any] = {}


def _render_one(cfg: SynthConfig, index: int) -> dict[str, Any]:
    import cv2

    from dataset.synth.avatar import PuppetRenderer
    from dataset.synth.plan import plan_video
    from dataset.synth.render import render_video
    from dataset.synth.speech import WordSynth
    from dataset.synth.truth import build_record

    if not _WORKER:
        cv2.setNumThreads(1)  # parallelism comes from worker processes
        _WORKER["renderer"], _WORKER["synth"] = PuppetRenderer(), WordSynth()
    plan = plan_video(cfg.seed, index, min_duration=cfg.min_duration, max_duration=cfg.max_duration,
                      resolutions=cfg.resolution_list(), profile=cfg.profile)
    rel = f"raw/{plan.video_id}.mp4"
    with atomic_open(Path(cfg.out) / rel) as handle:
        audios = render_video(plan, handle, _WORKER["renderer"], _WORKER["synth"], crf=cfg.crf, preset=cfg.preset)
    record = build_record(plan, audios, seed=cfg.seed, file=rel)
    if cfg.profile != "default":  # default records stay as they were
        record["profile"] = cfg.profile
    return record


def _prepare(cfg: SynthConfig) -> Path:
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out is not a folder: {out}")
    old = sorted((out / "raw").glob("synth_*.mp4")) if out.is_dir() else []
    if (out / "truth.jsonl").exists() or old:
        if not cfg.overwrite:
            raise FileExistsError(f"{out} already holds a synthetic corpus; pass --overwrite to replace it")
        # Stale videos beyond the new count would contradict the new truth.jsonl.
        keep = {f"synth_{i:05d}.mp4" for i in range(cfg.videos)}
        for path in old:
            if path.name not in keep:
                path.unlink()
    (out / "raw").mkdir(parents=True, exist_ok=True)
    return out


def generate_corpus(cfg: SynthConfig, *, progress: bool = True) -> CorpusSummary:
    """Render every video of `cfg` and write truth.jsonl; returns what was written."""
    from tqdm import tqdm

    out = _prepare(cfg)
    workers = cfg.workers or min(os.cpu_count() or 1, cfg.videos)
    records: dict[int, dict[str, Any]] = {}
    with tqdm(total=cfg.videos, desc="synth", unit="video", disable=not progress) as bar:
        if workers == 1:
            for index in range(cfg.videos):
                records[index] = _render_one(cfg, index)
                bar.update()
        else:
            # spawn, not fork: forking a process whose OpenCV / mediapipe thread pools already
            # run (a test session, a notebook) can deadlock the children.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(workers, cfg.videos), mp_context=context) as pool:
                futures = [pool.submit(_render_one, cfg, index) for index in range(cfg.videos)]
                for future in as_completed(futures):
                    record = future.result()
                    records[record["index"]] = record
                    bar.update()
    lines = [json.dumps(records[i], ensure_ascii=False) + "\n" for i in range(cfg.videos)]
    atomic_write_bytes(out / "truth.jsonl", "".join(lines).encode("utf-8"))
    return CorpusSummary(
        videos=cfg.videos,
        shots=sum(len(r["shots"]) for r in records.values()),
        seconds=sum(r["duration_s"] for r in records.values()),
        out=out,
    )
