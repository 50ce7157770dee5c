"""Evaluate folders of generated videos against a reference folder and assemble the report dict.

Each metric runs only when what it needs is there: FID the Inception weights, FVD the I3D file,
Sync the SyncNet weights (and audio), identity the face embedder, actions an action scorer (the
VLM judge, `evaluation.action_judge`, or on synthetic data the exact `detect_actions` reader).
Anything missing becomes `skipped[run][metric] = reason`; a weights path that is given but wrong
is an error (WeightsError), never a silent skip. Reference statistics are computed once and reused
for every run, so several checkpoints land side by side in one report.

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
from typing import Any, Callable

import numpy as np
import torch

from evaluation.action_accuracy import ActionScoreConfig, ClipActionScore, DetectActions, aggregate_actions, score_clip
from evaluation.config import EvalConfig
from evaluation.face_crops import FaceTrack, FaceTracker, NoFaceTrack, build_face_tracker
from evaluation.fid import FIDAccumulator
from evaluation.fvd import DETECTOR_KWARGS, I3DFeatures, fvd_result, load_i3d
from evaluation.identity import identity_similarity, load_face_embedder
from evaluation.inception import load_fid_inception
from evaluation.sync import SAMPLES_PER_FRAME, SYNCNET_AUDIO_RATE, SYNCNET_FPS, SyncResult, aggregate_sync, sync_scores
from evaluation.syncnet import load_syncnet
from evaluation.video_folder import Video, list_videos, read_audio, read_phases, read_reference_image, read_video, resample_fps

log = logging.getLogger(__name__)

ACTIONS_MISSING = ("no action scorer: needs the VLM judge (`--actions vlm judge.vlm.model=...`) or, on synthetic data, "
                   "the exact detect_actions reader (`--actions synthetic`)")
# (frames, fps, phases) -> (clip score, per-frame labels for the timeline plot)
ScoreActions = Callable[[np.ndarray, float, list], tuple[ClipActionScore, list[str]]]


def exact_scorer(detect: DetectActions, cfg: ActionScoreConfig) -> ScoreActions:
    """Per-frame labels from an exact reader, scored frame by frame (`score_clip`)."""
    def score(frames: np.ndarray, fps: float, phases: list) -> tuple[ClipActionScore, list[str]]:
        predicted = [str(x) for x in detect(frames, fps)]
        return score_clip(predicted, phases, fps, cfg), predicted
    return score


def _load_models(cfg: EvalConfig, score_actions: ScoreActions | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Networks for the requested metrics whose weights were given; reasons for the others."""
    wanted = set(cfg.metrics)
    models: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    sources = {"fid": (cfg.fid_weights, "--fid-weights / fid_weights"), "fvd": (cfg.i3d, "--i3d / i3d"),
               "sync": (cfg.syncnet, "--syncnet / syncnet"), "identity": (cfg.face_embedder, "--face-embedder / face_embedder")}
    for metric, (path, flag) in sources.items():
        if metric in wanted and not path:
            skipped[metric] = f"no weights given ({flag})"
    if "fid" in wanted and cfg.fid_weights:
        models["fid"] = load_fid_inception(cfg.fid_weights, resize=cfg.fid.resize, dims=cfg.fid.dims, device=cfg.device)
    if "fvd" in wanted and cfg.i3d:
        models["fvd"] = load_i3d(cfg.i3d, device=cfg.device)
    if "sync" in wanted and cfg.syncnet:
        models["sync"] = load_syncnet(cfg.syncnet, device=cfg.device)
    if "identity" in wanted and cfg.face_embedder:
        models["identity"] = load_face_embedder(cfg.face_embedder, device=cfg.device)
    if "actions" in wanted:
        if score_actions is None:
            skipped["actions"] = ACTIONS_MISSING
        else:
            models["actions"] = score_actions
    return models, skipped


def protocol(cfg: EvalConfig, models: Mapping[str, Any]) -> dict[str, Any]:
    """How each computed metric was measured (goes into the report verbatim)."""
    out: dict[str, Any] = {"device": cfg.device, "torch": torch.__version__}
    if "fid" in models:
        out["fid"] = {"features": f"Inception-v3 FID (pytorch-fid port), {cfg.fid.dims}-d" + (" pool3" if cfg.fid.dims == 2048 else " (NOT standard FID)"),
                      "resize": cfg.fid.resize.describe(),
                      "frame_stride": cfg.fid.frame_stride, "max_frames_per_video": cfg.fid.max_frames_per_video,
                      "statistic": "torchmetrics FrechetInceptionDistance (unbiased covariance)", "weights": cfg.fid_weights}
    if "fvd" in models:
        out["fvd"] = {"features": "I3D Kinetics-400 logits (400-d)", "detector_kwargs": DETECTOR_KWARGS,
                      "num_frames": cfg.fvd.num_frames, "frame_stride": cfg.fvd.frame_stride, "clips_per_video": cfg.fvd.clips_per_video,
                      "start": cfg.fvd.describe_start(), "seed": cfg.fvd.seed, "max_clips": cfg.fvd.max_clips,
                      "fps": cfg.fvd.fps, "frame_rate": "native (clips are not resampled)",
                      "statistic": "StyleGAN-V (covariance / N), scipy sqrtm", "weights": cfg.i3d}
    if "sync" in models or "identity" in models:
        out["faces"] = cfg.faces.describe()
    if "sync" in models:
        out["sync"] = {"algorithm": "syncnet_python SyncNetInstance.evaluate", "vshift": cfg.sync.vshift,
                       "offsets": 2 * cfg.sync.vshift + 1, "window_frames": 5, "mfcc": "13 x 100 Hz (python_speech_features)",
                       "fps": f"{SYNCNET_FPS} (other rates resampled to it, nearest frame, as ffmpeg -r 25)",
                       "audio": f"{SYNCNET_AUDIO_RATE} Hz mono" + (", the face track's span" if cfg.faces.crop == "face_track" else ""),
                       "faces": cfg.faces.crop, "aggregate": "mean over clips", "weights": cfg.syncnet}
    if "identity" in models:
        out["identity"] = {"input_size": cfg.identity.input_size, "frame_stride": cfg.identity.frame_stride,
                           "aggregate": "mean cosine over frames, then over clips", "weights": cfg.face_embedder}
    if "actions" in models:
        out["actions"] = {"min_fraction": cfg.actions.min_fraction, "aggregate": "pooled over phases / frames"}
    return out


def _run_metric(name: str, skipped: dict[str, str], fn: Any) -> Any:
    """Call fn(); a data problem (too few clips, no audio) becomes a skip reason, not a crash."""
    try:
        return fn()
    except ValueError as err:
        skipped[name] = str(err)
        return None


def _face_track(tracker: FaceTracker, frames: np.ndarray, cache: dict[str, FaceTrack | str]) -> FaceTrack | str:
    """The clip's face track, or the reason it has none (computed once, shared by Sync and identity)."""
    if "track" not in cache:
        try:
            cache["track"] = tracker.track(frames)
        except NoFaceTrack as err:
            cache["track"] = str(err)
    return cache["track"]


def _sync_clip(net: Any, video25: np.ndarray, audio: tuple[np.ndarray, int], tracker: FaceTracker | None,
               cache: dict[str, Any], cfg: EvalConfig) -> SyncResult | str:
    """One clip's Sync on its face track (the track's frames and audio span) or on whole frames."""
    samples, rate = audio
    if tracker is None:
        return sync_scores(net, video25, samples, rate, cfg=cfg.sync)
    track = _face_track(tracker, video25, cache)
    if isinstance(track, str):
        return track
    return sync_scores(net, track.crops, samples[track.start * SAMPLES_PER_FRAME : track.stop * SAMPLES_PER_FRAME], rate, cfg=cfg.sync)


def _identity_clip(net: Any, image: np.ndarray, video25: np.ndarray, tracker: FaceTracker | None,
                   cache: dict[str, Any], cfg: EvalConfig) -> float | str:
    if tracker is None:
        return identity_similarity(net, image, video25, cfg=cfg.identity)
    track = _face_track(tracker, video25, cache)
    if isinstance(track, str):
        return track
    try:
        reference = tracker.crop_image(image)
    except NoFaceTrack as err:
        return str(err)
    return identity_similarity(net, reference[0], track.crops, cfg=cfg.identity)


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
    models, base_skipped = _load_models(cfg, judge or (exact_scorer(detect_actions, cfg.actions) if detect_actions else None))
    own_tracker = face_tracker is None and cfg.faces.crop == "face_track" and ("sync" in models or "identity" in models)
    tracker = build_face_tracker(cfg.faces) if own_tracker else (face_tracker if cfg.faces.crop == "face_track" else None)
    try:
        return _evaluate(cfg, runs, reference, ref_videos, models, base_skipped, tracker, progress)
    finally:
        if own_tracker:
            tracker.close()


def _evaluate(cfg: EvalConfig, runs: Mapping[str, str | Path], reference: Path, ref_videos: dict[str, Path],
              models: dict[str, Any], base_skipped: dict[str, str], tracker: FaceTracker | None, progress: bool) -> dict[str, Any]:

    # 1. Reference statistics, once for all runs.
    fid_acc = FIDAccumulator(models["fid"], cfg.fid) if "fid" in models else None
    fvd_real = I3DFeatures(models["fvd"], cfg.fvd, real=True) if "fvd" in models else None
    if fid_acc or fvd_real:
        what = "+".join(m for m, on in (("FID", fid_acc), ("FVD", fvd_real)) if on)
        for path in _bar(ref_videos.values(), f"reference {what} statistics", len(ref_videos), progress):
            frames = read_video(path).frames
            if fid_acc:
                fid_acc.add_video(frames, real=True)
            if fvd_real:
                fvd_real.add_video(frames)

    report: dict[str, Any] = {"metrics": {}, "skipped": {}, "details": {}, "per_clip": {}, "timelines": [],
                              "protocol": protocol(cfg, models)}
    for run, folder in runs.items():
        gen_videos = list_videos(folder)
        keys = [k for k in gen_videos if k in ref_videos]
        skipped = dict(base_skipped)
        metrics: dict[str, Any] = {"num_videos": len(keys)}
        details: dict[str, Any] = {"folder": str(folder), "unmatched_generated": sorted(set(gen_videos) - set(ref_videos)),
                                   "missing_generated": sorted(set(ref_videos) - set(gen_videos))}
        per_clip: dict[str, dict[str, Any]] = {k: {} for k in keys}
        if not keys:
            raise FileNotFoundError(f"run {run!r}: no video in {folder} has a reference of the same name in {reference}")
        if fid_acc:
            fid_acc.reset_fake()
        fvd_fake = I3DFeatures(models["fvd"], cfg.fvd) if fvd_real else None
        syncs: list[SyncResult] = []
        identities: list[float] = []
        action_clips = []

        # 2. One pass over the generated videos; every metric takes what it needs.
        scored = ",".join(m for m in ("fid", "fvd", "sync", "identity", "actions") if m in models)
        for key in _bar(keys, f"{run}: {scored}", len(keys), progress):
            video: Video = read_video(gen_videos[key])
            frames, fps = video.frames, video.fps
            video25 = frames if abs(fps - SYNCNET_FPS) < 1e-3 else resample_fps(video, SYNCNET_FPS)  # SyncNet's rate
            faces: dict[str, Any] = {}
            if fid_acc:
                fid_acc.add_video(frames, real=False)
            if fvd_fake:
                fvd_fake.add_video(frames)
            if "sync" in models:
                audio = read_audio(gen_videos[key])
                if audio is None:
                    per_clip[key]["sync"] = "no audio"
                else:
                    res = _run_metric("sync", per_clip[key], lambda: _sync_clip(models["sync"], video25, audio, tracker, faces, cfg))
                    if isinstance(res, str):
                        per_clip[key]["sync"] = res
                    elif res is not None:
                        syncs.append(res)
                        per_clip[key].update(av_offset=res.offset, sync_c=res.confidence, sync_d=res.min_dist)
            if "identity" in models:
                ref_frames = read_video(ref_videos[key]).frames if not any((reference / f"{key}{s}").is_file() for s in (".png", ".jpg", ".jpeg")) else None
                image, source = read_reference_image(reference, key, ref_frames)
                sim = _identity_clip(models["identity"], image, video25, tracker, faces, cfg)
                if isinstance(sim, str):
                    per_clip[key]["identity"] = sim
                else:
                    identities.append(sim)
                    per_clip[key].update(identity=sim, identity_reference=source)
            if isinstance(faces.get("track"), FaceTrack):
                per_clip[key]["face_track"] = [faces["track"].start, faces["track"].stop]
            if "actions" in models:
                phases = read_phases(reference, key)
                if phases is None:
                    per_clip[key]["actions"] = "no annotation JSON"
                else:
                    scored = _run_metric("actions", per_clip[key], lambda: models["actions"](frames, fps, phases))
                    if scored is not None:  # else per_clip[key]["actions"] says why
                        clip, predicted = scored
                        action_clips.append(clip)
                        per_clip[key].update(phase_accuracy=clip.phase_accuracy, temporal_precision=clip.temporal_precision)
                        if len(action_clips) <= cfg.timelines:
                            report["timelines"].append({"run": run, "key": key, "phases": phases, "predicted": predicted, "fps": fps})

        # 3. Dataset figures.
        if fid_acc:
            res = _run_metric("fid", skipped, fid_acc.compute)
            if res is not None:
                metrics["fid"] = res.fid
                details["fid"] = res.as_dict()
        if fvd_fake:
            res = _run_metric("fvd", skipped, lambda: fvd_result(fvd_real, fvd_fake, cfg.fvd))
            if res is not None:
                metrics["fvd"] = res.fvd
                details["fvd"] = res.as_dict()
        if "sync" in models:
            if syncs:
                metrics.update({k: v for k, v in aggregate_sync(syncs).items() if k != "num_clips"})
                details["sync"] = {"num_clips": len(syncs), "offsets": [r.offset for r in syncs]}
            else:
                skipped["sync"] = "no clip could be scored (no audio, no face track, or fewer than 6 frames; see per_clip)"
        if "identity" in models:
            if identities:
                metrics["identity"] = float(np.mean(identities))
                details["identity"] = {"num_clips": len(identities)}
            else:
                skipped["identity"] = "no clip could be scored (no face track or no face in the reference; see per_clip)"
        if "actions" in models:
            if action_clips:
                agg = aggregate_actions(action_clips)
                metrics.update({k: agg[k] for k in ("phase_accuracy", "exclusive_accuracy", "temporal_precision")})
                details["actions"] = {"num_phases": agg["num_phases"], "num_clips": agg["num_clips"]}
            else:
                skipped["actions"] = f"no reference annotation JSON (<key>.json with caption.phases) in {reference}"
        report["metrics"][run] = metrics
        report["skipped"][run] = skipped
        report["details"][run] = details
        report["per_clip"][run] = per_clip
        for metric, reason in skipped.items():
            log.info("%s: %s skipped: %s", run, metric, reason)
    return report
