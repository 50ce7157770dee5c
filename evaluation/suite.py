"""Evaluate folders of generated videos against a reference folder and assemble the report dict.

Each metric runs only when what it needs is there: FID the Inception weights, FVD the I3D file,
Sync the SyncNet weights (and audio), identity the face embedder, actions an action scorer (the
VLM judge, `evaluation.action_judge`, or on synthetic data the exact `detect_actions` reader).
Anything missing becomes `skipped[run][metric] = reason`; a weights path that is given but wrong
is an error (WeightsError), never a silent skip. Reference statistics are computed once and reused
for every run, so several checkpoints land side by side in one report. Each metric is one file in
`evaluation/metrics/` behind one interface (reference videos, per-run begin, per-clip update,
finish, protocol); this module only drives them over the clips, with progress bars.

Sync and identity see what syncnet_python's pipeline gives SyncNet: the video at 25 fps (other
rates resampled, nearest frame), 16 kHz mono audio, and 224×224 crops of the clip's face track
(`faces.crop=face_track`, evaluation/face_crops.py; Sync uses the audio of the track's frames
only). A clip without a face track gets a per-clip note and no score. `faces.crop=whole_frame`
scores whole frames instead, and the protocol says so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from evaluation.action_accuracy import DetectActions
from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTracker, build_face_tracker
from evaluation.metrics import Clip, Metric, ScoreActions, build_metrics, exact_scorer
from evaluation.video_folder import list_videos, read_video

log = logging.getLogger(__name__)


def protocol(cfg: EvalConfig, metrics: list[Metric]) -> dict[str, Any]:
    """How each computed metric was measured (goes into the report verbatim)."""
    out: dict[str, Any] = {"device": cfg.device, "torch": torch.__version__}
    if any(m.name in ("sync", "identity") for m in metrics):
        out["faces"] = cfg.faces.describe()
    out.update({m.name: m.protocol() for m in metrics})
    return out


def _bar(items: Any, desc: str, total: int, progress: bool) -> Any:
    """A tqdm bar over `items` (clips scored, rate, ETA) when `progress`, else the items."""
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit="clip")


def evaluate_folders(
    cfg: EvalConfig, runs: Mapping[str, str | Path], reference: str | Path, *,
    detect_actions: DetectActions | None = None, judge: ScoreActions | None = None, face_tracker: FaceTracker | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Report dict ({metrics, skipped, details, per_clip, protocol, timelines}) for every run.

    Phase-level actions are scored by `judge` (e.g. `evaluation.action_judge.ActionJudge`) or, on
    synthetic data, from the per-frame labels of `detect_actions`. Sync and identity use
    `face_tracker` (default: one on our face detector, built when `faces.crop=face_track`).
    """
    reference = Path(reference)
    ref_videos = list_videos(reference)
    if not ref_videos:
        raise FileNotFoundError(f"no reference videos (*.mp4) in {reference}")
    if judge is not None and detect_actions is not None:
        raise ValueError("give detect_actions or judge, not both")
    score_actions = judge or (exact_scorer(detect_actions, cfg.actions) if detect_actions else None)
    wants_faces = cfg.faces.crop == "face_track" and bool({"sync", "identity"} & set(cfg.metrics))
    own_tracker = face_tracker is None and wants_faces and bool(cfg.syncnet or cfg.face_embedder)
    tracker = build_face_tracker(cfg.faces) if own_tracker else (face_tracker if wants_faces else None)
    try:
        metrics, base_skipped = build_metrics(cfg, score_actions, tracker)
        return _evaluate(cfg, runs, reference, ref_videos, metrics, base_skipped, progress)
    finally:
        if own_tracker:
            tracker.close()


def _evaluate(cfg: EvalConfig, runs: Mapping[str, str | Path], reference: Path, ref_videos: dict[str, Path],
              metrics: list[Metric], base_skipped: dict[str, str], progress: bool) -> dict[str, Any]:
    # 1. Reference statistics, once for all runs.
    need_reference = [m for m in metrics if m.uses_reference_videos]
    if need_reference:
        what = "+".join(m.name.upper() for m in need_reference)
        for path in _bar(ref_videos.values(), f"reference {what} statistics", len(ref_videos), progress):
            frames = read_video(path).frames
            for metric in need_reference:
                metric.add_reference(frames)

    report: dict[str, Any] = {"metrics": {}, "skipped": {}, "details": {}, "per_clip": {}, "timelines": [],
                              "protocol": protocol(cfg, metrics)}
    names = ",".join(m.name for m in metrics)
    for run, folder in runs.items():
        gen_videos = list_videos(folder)
        keys = [k for k in gen_videos if k in ref_videos]
        if not keys:
            raise FileNotFoundError(f"run {run!r}: no video in {folder} has a reference of the same name in {reference}")
        skipped = dict(base_skipped)
        values: dict[str, Any] = {"num_videos": len(keys)}
        details: dict[str, Any] = {"folder": str(folder), "unmatched_generated": sorted(set(gen_videos) - set(ref_videos)),
                                   "missing_generated": sorted(set(ref_videos) - set(gen_videos))}
        per_clip: dict[str, dict[str, Any]] = {}
        for metric in metrics:
            metric.begin_run(run)
        # 2. One pass over the generated videos; every metric takes what it needs from the shared clip.
        for key in _bar(keys, f"{run}: {names}", len(keys), progress):
            clip = Clip(key=key, path=gen_videos[key], video=read_video(gen_videos[key]), reference_dir=reference,
                        reference_path=ref_videos[key])
            for metric in metrics:
                metric.add_clip(clip)
            per_clip[key] = clip.record
        # 3. Dataset figures.
        for metric in metrics:
            metric.finish_run(values, details, skipped)
        report["metrics"][run] = values
        report["skipped"][run] = skipped
        report["details"][run] = details
        report["per_clip"][run] = per_clip
        for metric, reason in skipped.items():
            log.info("%s: %s skipped: %s", run, metric, reason)
    report["timelines"] = [t for m in metrics for t in m.timelines]
    return report
