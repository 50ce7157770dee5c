"""Sample the test windows with each arm and score the videos with the exact reader.

Sampling is `actavatar eval --checkpoint`'s own path (`evaluation.checkpoints.sample_checkpoints`:
OUT/samples/<run>/<key>.mp4 through H.264, read back from the files), so a re-score with the
ordinary `actavatar eval` sees exactly these videos. Rows that are not models are scored the same
way: the reader on the real test windows (its ceiling), on their VAE reconstructions (the VAE's
ceiling), copying the reference frame, and always the most frequent training label.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.mechanism.config import MechanismConfig
from evaluation.mechanism.scores import aggregate, score_window
from dataset.schema import VIDEO_FPS

log = logging.getLogger(__name__)

VARIANTS = ("unguided", "guided")


def benchmark_windows(bench: Path, limit: int = 0) -> list[tuple[str, list[dict[str, Any]]]]:
    """[(key, truth phases)] of the benchmark folder in key order (the first `limit` when > 0)."""
    from evaluation.video_folder import read_phases

    keys = sorted(p.stem for p in bench.glob("*.json"))
    keys = keys[:limit] if limit else keys
    return [(key, read_phases(bench, key) or []) for key in keys]


def read_labels(frames: np.ndarray) -> list[str]:
    from dataset.synth import detect_actions

    return [str(x) for x in detect_actions(frames, VIDEO_FPS)]


def score_labels(labels: dict[str, list[str]], windows: Sequence[tuple[str, list[dict]]], min_frames: int) -> dict[str, Any]:
    """Aggregate scores of per-window reader labels (windows missing from `labels` are skipped)."""
    return aggregate(score_window(labels[key], phases, VIDEO_FPS, min_frames=min_frames) for key, phases in windows if key in labels)


def folder_labels(folder: Path, windows: Sequence[tuple[str, list[dict]]]) -> dict[str, list[str]]:
    """Reader labels of every <key>.mp4 of `folder` that is a benchmark window."""
    from evaluation.video_folder import read_frames

    return {key: read_labels(read_frames(folder / f"{key}.mp4")) for key, _ in windows if (folder / f"{key}.mp4").is_file()}


def sample_config(cfg: MechanismConfig, variant: str):
    """The SampleConfig of a variant: the encoders and token budgets come from each checkpoint's
    conditioning.json; only the sampler and the output size are set here."""
    from evaluation.sample import SampleConfig
    from evaluation.sampler import GuidanceConfig, SamplerConfig

    e = cfg.eval
    guided = variant == "guided"
    sampler = SamplerConfig(steps=e.steps, solver=e.solver, shift=cfg.train.shift,
                            text=GuidanceConfig(scale=e.text_scale if guided else 1.0),
                            audio=GuidanceConfig(scale=e.audio_scale if guided else 1.0))
    size = cfg.corpus.clip_size
    return SampleConfig(device=cfg.device, width=size, height=size, num_frames=cfg.window_frames, seed=cfg.seed,
                        threads=cfg.cpu_threads, sampler=sampler)


def sample_runs(cfg: MechanismConfig, checkpoints: dict[str, Path], bench: Path, out: Path, variant: str,
                limit: int = 0) -> dict[str, Path]:
    """Sample `limit` (0 = all) benchmark windows with each checkpoint; resumes (existing videos are kept)."""
    from evaluation.checkpoints import sample_checkpoints

    folders, _ = sample_checkpoints(sample_config(cfg, variant), {k: str(v) for k, v in checkpoints.items()}, bench, out,
                                    max_clips=limit, progress=True, skip_existing=True)
    return folders


def reference_rows(cfg: MechanismConfig, bench: Path, vae: Path, train_corpus: Path, windows: Sequence[tuple[str, list[dict]]]
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[str]]]]:
    """Scores (and per-window labels) of the rows that are not trained models."""
    from evaluation.video_folder import read_frames

    truth_videos = {key: read_frames(bench / f"{key}.mp4") for key, _ in windows}
    labels: dict[str, dict[str, list[str]]] = {"reader_on_truth": {k: read_labels(v) for k, v in truth_videos.items()}}
    labels["copy_reference"] = {k: read_labels(np.repeat(v[:1], len(v), axis=0)) for k, v in truth_videos.items()}
    label_frames = training_label_frames(train_corpus)
    common = label_frames.most_common(1)[0][0]
    labels["most_frequent"] = {k: [common] * len(v) for k, v in truth_videos.items()}
    labels["vae_reconstruction"] = {k: read_labels(f) for k, f in reconstruct(vae, truth_videos).items()}
    rows = {name: score_labels(lab, windows, cfg.eval.min_frames) for name, lab in labels.items()}
    rows["most_frequent"]["label"] = common
    rows["most_frequent"]["vocabulary"] = sorted(label_frames)
    return rows, labels


def training_label_frames(corpus: Path) -> Counter[str]:
    """Frames covered by each phase label in the training clips' captions."""
    from dataset.reader import shard_pipeline

    frames: Counter[str] = Counter()
    for sample in shard_pipeline(corpus, decode="annotation"):
        for p in (sample["annotation"].get("caption") or {}).get("phases") or []:
            frames[str(p.get("label", p.get("text")))] += round((float(p["end_s"]) - float(p["start_s"])) * VIDEO_FPS)
    if not frames:
        raise ValueError(f"{corpus}: no phase captions (labels) in the training clips")
    return frames


def reconstruct(vae_path: Path, videos: dict[str, np.ndarray], batch: int = 4) -> dict[str, np.ndarray]:
    """Encode and decode each window with the VAE (through H.264 like every sample, for a fair ceiling)."""
    import torch

    from dataset.media import decode_mp4, encode_mp4
    from train.pretrained import load_vae

    vae = load_vae(str(vae_path))
    keys, out = list(videos), {}
    with torch.no_grad():
        for i in range(0, len(keys), batch):
            chunk = keys[i : i + batch]
            x = torch.stack([torch.from_numpy(videos[k]) for k in chunk]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
            y = vae.decode(vae.encode(x))
            for key, video in zip(chunk, y, strict=True):
                frames = ((video.permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).byte().numpy()
                out[key] = decode_mp4(encode_mp4(frames, fps=VIDEO_FPS))
    return out


def write_json(path: Path, doc: Any) -> None:
    from dataset.atomic import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(doc, indent=2, default=_jsonable) + "\n").encode())


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
