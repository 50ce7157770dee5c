"""`run_benchmark(cfg)`: every step of the mechanism benchmark, each skipped when already done.

    corpus -> VAE -> latent windows -> stage 1 -> stage 2 per arm -> samples (unguided, guided)
    -> learning curves -> reference rows -> text-use check -> each part's own step -> report

A rerun of the same command resumes: finished steps have a `.done` marker (or their final
export), training resumes from its last checkpoint and sampling keeps the videos it wrote.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from evaluation.mechanism import arms as arm_runs
from evaluation.mechanism.config import ARM_TITLES, MechanismConfig, describe
from evaluation.mechanism.corpus import build_corpus, done, mark_done
from evaluation.mechanism.evaluate import (
    VARIANTS,
    benchmark_windows,
    folder_labels,
    reference_rows,
    sample_runs,
    score_labels,
    write_json,
)
from evaluation.mechanism.identity import FACE_ARM, identity_step
from evaluation.mechanism.lip_sync import LIP_ARMS, lip_sync_step
from evaluation.mechanism.motion import MOTION_ARM, motion_control_step
from evaluation.mechanism.pose_control import pose_arm, pose_control_step
from evaluation.mechanism.refocus import REFOCUS_ARM, refocus_step
from evaluation.mechanism.scores import chance_levels

log = logging.getLogger(__name__)


class Timer:
    """Wall seconds of each step, kept in DIR/timings.json across resumed runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = json.loads(path.read_text()) if path.is_file() else {}

    def run(self, name: str, fn, *args, **kwargs):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 1)
        write_json(self.path, self.seconds)
        return result


def train_vae_step(cfg: MechanismConfig, paths: dict[str, Path]) -> Path:
    """The compact VAE (trained by `actavatar models train-vae`'s code, or the one given)."""
    if cfg.vae.path:
        return Path(cfg.vae.path)
    from train.vae_train import REPORT_FILE, VaeArchConfig, VaeTrainConfig, train_vae

    out = Path(cfg.out) / "vae"
    if not (out / REPORT_FILE).is_file():
        v = cfg.vae
        chosen = {k: getattr(v, k) for k in ("steps", "window_steps", "batch_size", "lr", "mouth_weight") if getattr(v, k) is not None}
        arch = VaeArchConfig(**{k: getattr(v, k) for k in ("z_dim", "base_dim", "patch_size") if getattr(v, k) is not None})
        train_vae(VaeTrainConfig(data=str(paths["train"]), out=str(out), frames=cfg.window_frames, size=cfg.corpus.clip_size,
                                 seed=cfg.seed, threads=cfg.cpu_threads, arch=arch, **chosen))
    return out


def encode_step(cfg: MechanismConfig, paths: dict[str, Path]) -> Path:
    """Every training window (stride `train.window_stride`) encoded once: latents, text blocks, audio."""
    from dataset.config_loader import load_config
    from train.config import TrainConfig
    from train.encode import encode_corpus

    out = Path(cfg.out) / "latents"
    if not done(out):
        doc = arm_runs.stage1_config(cfg, {**paths, "latents": paths["train"]}, "stage1", arm_runs.VaeLatent.read(paths["vae"]))
        doc["data"]["kind"] = "media"
        config_path = arm_runs.write_config(doc, out.parent / "encode_config.yaml")
        counts = encode_corpus(load_config(TrainConfig, config_path), out, overwrite=True, device=cfg.device,
                               windows_per_clip=0, window_stride=cfg.train.window_stride, batch_size=4)
        mark_done(out, counts)
    return out


def train_step(cfg: MechanismConfig, paths: dict[str, Path]) -> dict[str, Path]:
    """Stage 1 runs (shared where the arms allow), then every arm's stage 2; returns {arm: EMA export}."""
    latent = arm_runs.VaeLatent.read(paths["vae"])
    threads = cfg.cpu_threads or (os.cpu_count() or 1)
    firsts = sorted({arm_runs.stage1_run(a) for a in cfg.arms})
    arm_runs.run_all([(run, arm_runs.stage1_config(cfg, paths, run, latent)) for run in firsts], parallel=cfg.train.parallel,
                     threads=threads)
    arm_runs.run_all([(arm, arm_runs.stage2_config(cfg, paths, arm)) for arm in cfg.arms], parallel=cfg.train.parallel,
                     threads=threads)
    return {arm: Path(cfg.out) / "train" / arm / "ema" for arm in cfg.arms}


def curve_step(cfg: MechanismConfig, paths: dict[str, Path]) -> dict[str, list[tuple[int, float]]]:
    """New-action accuracy of every stage-2 snapshot (and the final EMA) on the first `curve_windows` windows."""
    windows = benchmark_windows(paths["benchmark"], cfg.eval.curve_windows)
    curves: dict[str, list[tuple[int, float]]] = {}
    for arm in cfg.arms:
        run = Path(cfg.out) / "train" / arm
        points = {int(p.name.split("-")[1]): p for p in sorted((run / "snapshots").glob("step-*")) if (p / "config.json").is_file()}
        points[cfg.train.stage2_steps] = run / "ema"
        folders = sample_runs(cfg, {f"{arm}@{step}": path for step, path in points.items()}, paths["benchmark"],
                              Path(cfg.out) / "curves", "unguided", limit=cfg.eval.curve_windows)
        curves[arm] = [(step, float(score_labels(folder_labels(folders[f"{arm}@{step}"], windows), windows,
                                                 cfg.eval.min_frames)["new_action_accuracy"])) for step in sorted(points)]
    return curves


def text_use_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoints: dict[str, Path]) -> dict[str, Any]:
    from dataset.synth import rig
    from evaluation.benchmark import jobs_from_benchmark
    from evaluation.mechanism.evaluate import sample_config
    from evaluation.mechanism.text_use import denoising_errors
    from evaluation.sample import AvatarSampler, resolve_checkpoint

    vocabulary = {label: text for label, text in rig.ACTIONS.items() if label == "idle" or label in rig.ARM_ACTIONS}
    jobs = jobs_from_benchmark(paths["benchmark"], cfg.eval.swap_windows)
    out = {}
    for arm, ckpt in checkpoints.items():
        sampler = AvatarSampler(resolve_checkpoint(sample_config(cfg, "unguided"), ckpt))
        out[arm] = denoising_errors(sampler, jobs, cfg.window_frames, vocabulary, seed=cfg.seed)
    return out


def run_benchmark(cfg: MechanismConfig) -> dict[str, Any]:
    """Run (or resume) the benchmark; returns the report dict (also written to DIR/report/)."""
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / "config.json", describe(cfg))
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    timer = Timer(root / "timings.json")
    paths = timer.run("corpus", build_corpus, cfg)
    paths["vae"] = timer.run("vae", train_vae_step, cfg, paths)
    paths["latents"] = timer.run("encode", encode_step, cfg, paths)
    checkpoints = timer.run("train", train_step, cfg, paths)
    windows = benchmark_windows(paths["benchmark"], cfg.eval.max_windows)
    labels: dict[str, dict[str, list[str]]] = {}
    for variant in VARIANTS:
        folders = timer.run(f"sample_{variant}", sample_runs, cfg, checkpoints, paths["benchmark"],
                            root / "samples" / variant, variant, cfg.eval.max_windows)
        for arm, folder in folders.items():
            labels[f"{arm} ({variant})"] = folder_labels(folder, windows)
    curves = timer.run("curves", curve_step, cfg, paths)
    ref_rows, ref_labels = timer.run("reference_rows", reference_rows, cfg, paths["benchmark"], paths["vae"], paths["train"], windows)
    swaps = timer.run("text_use", text_use_step, cfg, paths, checkpoints)
    motion = None
    if MOTION_ARM in checkpoints:
        motion = timer.run("motion_control", motion_control_step, cfg, paths, checkpoints[MOTION_ARM])
    pose = None
    if pose_arm(checkpoints) is not None:
        pose = timer.run("pose_control", pose_control_step, cfg, paths, checkpoints)
    refocus = None
    if REFOCUS_ARM in checkpoints:
        refocus = timer.run("refocus", refocus_step, cfg, paths, checkpoints)
    identity = None
    if FACE_ARM in checkpoints:
        identity = timer.run("identity", identity_step, cfg, paths, checkpoints)
    lips = None
    if any(arm in checkpoints for arm in LIP_ARMS):
        lips = timer.run("lip_sync", lip_sync_step, cfg, paths, checkpoints)
    return write_benchmark_report(cfg, paths, windows, labels, ref_rows, ref_labels, curves, swaps, timer.seconds, motion, pose,
                                  refocus, identity, lips)


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} CPU cores ({cpu}){gpu}, {platform.system()}"


def write_benchmark_report(cfg: MechanismConfig, paths: dict[str, Path], windows, labels, ref_rows, ref_labels, curves, swaps,
                           seconds: dict[str, float], motion: dict[str, Any] | None = None,
                           pose: dict[str, Any] | None = None, refocus: dict[str, Any] | None = None,
                           identity: dict[str, Any] | None = None, lips: dict[str, Any] | None = None) -> dict[str, Any]:
    from evaluation.mechanism.report import contact_sheet, markdown, plot_learning_curves, plot_loss_curves, plot_timelines
    from evaluation.video_folder import read_frames

    root = Path(cfg.out)
    rows: dict[str, dict[str, Any]] = {}
    for name, lab in labels.items():
        arm = name.split(" ")[0]
        row = score_labels(lab, windows, cfg.eval.min_frames)
        row.update(arm=arm, title=ARM_TITLES[arm], steps=cfg.train.stage1_steps + cfg.train.stage2_steps,
                   train_minutes=round(train_minutes(root, arm), 1), text_swap_increase=swaps[arm]["relative_increase"])
        rows[name] = row
    titles = {"reader_on_truth": "reader on the real test windows (ceiling)", "vae_reconstruction": "VAE reconstruction (ceiling)",
              "copy_reference": "copy the reference frame", "most_frequent": "always the most frequent label"}
    for name, row in ref_rows.items():
        rows[titles[name]] = row
    report = {
        "benchmark": "mechanism", "scale": cfg.scale, "seed": cfg.seed,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": _machine(), "torch": torch.__version__,
        "arms": {arm: ARM_TITLES[arm] for arm in cfg.arms}, "rows": rows, "chance": chance_levels(ref_rows["most_frequent"]["vocabulary"]),
        "windows": len(windows), "learning_curves": curves, "text_use": swaps, "motion_control": motion, "pose_control": pose,
        "refocus": refocus, "identity": identity, "lip_sync": lips,
        "seconds": seconds,
        "vae": json.loads((paths["vae"] / "vae_report.json").read_text()) if (paths["vae"] / "vae_report.json").is_file() else None,
        "config": describe(cfg),
        "notes": [
            "new-action accuracy: action (non-idle) phases that start after the reference frame, performed when the "
            "majority of the exact reader's labels over the phase is its label; phases with fewer than "
            f"{cfg.eval.min_frames} frames in the window are not scored",
            f"guided: text guidance {cfg.eval.text_scale}, audio {cfg.eval.audio_scale}; unguided: both 1",
            "text swap Δ: relative increase of the denoising error when every phase text is replaced by another action's",
        ] + ([f"face close-ups (corpus.crop_scale={cfg.corpus.crop_scale}): the hands are mostly out of the frame, so "
              "the action rows do not measure phase control; this run is for the lip-sync section"]
             if cfg.corpus.crop_scale is not None and cfg.corpus.crop_scale < 3 else []),
    }
    out = root / "report"
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown(report))
    plots = out / "plots"
    runs = {p.name: p for p in sorted((root / "train").glob("*")) if p.is_dir()}
    plot_loss_curves(runs, plots / "loss_curves.png")
    baselines = {"copy reference": ref_rows["copy_reference"]["new_action_accuracy"],
                 "most frequent": ref_rows["most_frequent"]["new_action_accuracy"]}
    plot_learning_curves(curves, baselines, plots / "learning_curves.png")
    shown = [w for w in windows if any(p["start_s"] > 0 and p["label"] != "idle" for p in w[1])][:4] or list(windows[:4])
    unguided = {n: lab for n, lab in labels.items() if n.endswith("(unguided)")}
    plot_timelines(shown, {"reader on truth": ref_labels["reader_on_truth"], **unguided}, 25.0, plots / "timelines.png")
    videos = {"truth": {k: read_frames(paths["benchmark"] / f"{k}.mp4") for k, _ in shown}}
    for arm in cfg.arms:
        folder = root / "samples" / "unguided" / arm
        videos[arm] = {k: read_frames(folder / f"{k}.mp4") for k, _ in shown if (folder / f"{k}.mp4").is_file()}
    n = cfg.window_frames
    contact_sheet(videos, [k for k, _ in shown[:3]], [int(round(i * (n - 1) / 7)) for i in range(8)], plots / "contact_sheet.png")
    return report


def train_minutes(root: Path, arm: str) -> float:
    """Wall minutes of the arm's training: its stage 1 (shared or not) plus its stage 2."""
    total = 0.0
    for run in (arm_runs.stage1_run(arm), arm):
        wall = root / "train" / run / arm_runs.WALL_FILE
        total += float(wall.read_text()) if wall.is_file() else 0.0
    return total / 60.0
