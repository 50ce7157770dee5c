"""Does the requested motion intensity change the generated motion? (arm (e), `model.motion`)

The test windows are sampled with the motion arm at three requested intensities: the 10th, 50th
and 90th percentile of the training windows' own (face, body) intensities (`window.json` of the
latent windows, so every request is one the model saw), with the same seed and text. The exact
puppet reader measures the motion of every generated window (`annotate.pose.reader_pose` ->
`dataset.pose.window_motion`, the definition the training data used), and the report gives the
mean measured intensity per request, whether it rises with the request, and the Spearman rank
correlation between requested and measured body intensity over all (window, request) pairs.
References: the same windows sampled without a request, and the real test windows.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.mechanism.config import MechanismConfig

MOTION_ARM = "paca_motion"
PERCENTILES = {"low": 10, "mid": 50, "high": 90}


def training_intensities(latents: Path) -> np.ndarray:
    """(N, 2) (face, body) intensities of the training windows (NaN where unmeasured)."""
    from dataset.reader import shard_pipeline

    rows = []
    for raw in shard_pipeline(latents, decode="none"):
        motion = json.loads(raw["window.json"]).get("motion")
        if motion is not None:
            rows.append([np.nan if v is None else float(v) for v in motion])
    if not rows:
        raise ValueError(f"{latents}: no training window carries a motion intensity (a corpus without pose.npy?)")
    return np.array(rows, np.float64)


def requests(train: np.ndarray) -> dict[str, tuple[float, float]]:
    """The requested (face, body) intensity per level: percentiles of the training windows'."""
    return {name: tuple(round(float(np.nanpercentile(train[:, j], q)), 4) for j in range(2))  # type: ignore[misc]
            for name, q in PERCENTILES.items()}


def measured_intensity(frames: np.ndarray) -> tuple[float | None, float | None]:
    """(face, body) intensity of a generated window, read by the exact puppet reader."""
    from annotate.pose import reader_pose
    from dataset.pose import window_motion

    return window_motion(reader_pose(frames), 0, len(frames))


def _folder_intensities(folder: Path, keys: list[str]) -> dict[str, tuple[float | None, float | None]]:
    from evaluation.video_folder import read_frames

    return {key: measured_intensity(read_frames(folder / f"{key}.mp4")) for key in keys if (folder / f"{key}.mp4").is_file()}


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return round(float(np.mean(finite)), 4) if finite else None


def summarise(requested: dict[str, tuple[float, float]], measured: dict[str, dict[str, tuple[float | None, float | None]]],
              references: dict[str, dict[str, tuple[float | None, float | None]]]) -> dict[str, Any]:
    """Means per request and reference, monotonicity and the Spearman correlation (body)."""
    from scipy.stats import spearmanr

    out: dict[str, Any] = {"levels": {}, "references": {}}
    pairs = []
    for name, values in measured.items():
        out["levels"][name] = {"requested": list(requested[name]), "windows": len(values),
                               "measured_face": _mean([v[0] for v in values.values()]),
                               "measured_body": _mean([v[1] for v in values.values()])}
        pairs += [(requested[name][1], v[1]) for v in values.values() if v[1] is not None]
    for name, values in references.items():
        out["references"][name] = {"windows": len(values), "measured_face": _mean([v[0] for v in values.values()]),
                                   "measured_body": _mean([v[1] for v in values.values()])}
    body = [out["levels"][name]["measured_body"] for name in PERCENTILES if name in out["levels"]]
    out["body_rises_with_request"] = all(a is not None and b is not None and a < b for a, b in zip(body, body[1:]))
    asked, got = zip(*pairs) if pairs else ((), ())
    rho = spearmanr(asked, got).statistic if len(set(asked)) > 1 and len(set(got)) > 1 else float("nan")
    out["spearman_body"] = None if not np.isfinite(rho) else round(float(rho), 4)
    return out


def motion_control_step(cfg: MechanismConfig, paths: dict[str, Path], checkpoint: Path) -> dict[str, Any]:
    """Sample the first `eval.motion_windows` test windows at each requested intensity and measure them."""
    from evaluation.checkpoints import sample_checkpoints
    from evaluation.mechanism.evaluate import benchmark_windows, sample_config

    keys = [key for key, _ in benchmark_windows(paths["benchmark"], cfg.eval.motion_windows)]
    requested = requests(training_intensities(paths["latents"]))
    root = Path(cfg.out) / "samples" / "motion"
    measured = {}
    for name, intensity in requested.items():
        sample_cfg = dataclasses.replace(sample_config(cfg, "unguided"), motion_intensity=intensity)
        folders, _ = sample_checkpoints(sample_cfg, {name: str(checkpoint)}, paths["benchmark"], root,
                                        max_clips=cfg.eval.motion_windows, progress=True, skip_existing=True)
        measured[name] = _folder_intensities(folders[name], keys)
    references = {"no request": _folder_intensities(Path(cfg.out) / "samples" / "unguided" / MOTION_ARM, keys),
                  "real test windows": _folder_intensities(paths["benchmark"], keys)}
    return summarise(requested, measured, references)


def markdown_section(result: dict[str, Any]) -> list[str]:
    """Lines of the report's motion-control section."""
    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = ["", "## Motion-intensity control (arm (e), FantasyTalking's modulation)", "",
             "| request | requested (face, body) | measured face | measured body | windows |", "|---|---|---|---|---|"]
    for name, row in result["levels"].items():
        face, body = row["requested"]
        lines.append(f"| {name} | {face:.3f}, {body:.3f} | {fmt(row['measured_face'])} | {fmt(row['measured_body'])} | {row['windows']} |")
    for name, row in result["references"].items():
        lines.append(f"| {name} | — | {fmt(row['measured_face'])} | {fmt(row['measured_body'])} | {row['windows']} |")
    lines += ["", f"Measured body intensity rises with the request: {'yes' if result['body_rises_with_request'] else 'no'}; "
              f"Spearman ρ (requested vs measured body, all windows): {fmt(result['spearman_body'])} "
              "(windows where the reader finds no puppet are left out)."]
    return lines
