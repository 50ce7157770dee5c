"""The benchmark's report: a paper-style table (Markdown + JSON) and its plots.

    DIR/report/report.md, report.json     every row (arms x sampling variants, then the reference rows),
                                          every metric, the chance level, steps, wall time, machine
    DIR/report/plots/loss_curves.png      training loss per run
    DIR/report/plots/learning_curves.png  new-action accuracy of the stage-2 snapshots against steps
    DIR/report/plots/timelines.png        intended phases against what the reader sees, a few windows
    DIR/report/plots/contact_sheet.png    frames of a few windows: the truth, then each arm
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = (
    ("new_action_accuracy", "new-action acc."),
    ("new_action_balanced", "balanced"),
    ("new_idle_accuracy", "new idle acc."),
    ("phase_accuracy", "phase acc."),
    ("exclusive_accuracy", "exclusive"),
    ("frame_accuracy", "frame acc."),
    ("temporal_iou", "temporal IoU"),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.3f}"
    return "—" if value is None else str(value)


def markdown(report: Mapping[str, Any]) -> str:
    """The table and the facts a reader needs to trust it."""
    rows = report["rows"]
    head = "| row | " + " | ".join(title for _, title in COLUMNS) + " | new-action phases | text swap Δ | steps | train min |"
    lines = [f"# Mechanism benchmark ({report['scale']} scale)", "",
             f"{report['date']} · {report['machine']} · torch {report['torch']} · seed {report['seed']}", "",
             head, "|" + "---|" * (len(COLUMNS) + 5)]
    for name, row in rows.items():
        cells = [_fmt(row.get(key)) for key, _ in COLUMNS]
        swap = row.get("text_swap_increase")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(row.get('num_new_action_phases'))} | "
                     + (f"{100 * swap:+.1f} %" if isinstance(swap, float) and math.isfinite(swap) else "—")
                     + f" | {_fmt(row.get('steps'))} | {_fmt(row.get('train_minutes'))} |")
    chance = report["chance"]
    lines.append("| chance (uniform label) | " + " | ".join(_fmt(chance.get(key)) for key, _ in COLUMNS) + " | | | | |")
    lines += ["", "Per action (new phases):", ""]
    actions = sorted({a for row in rows.values() for a in (row.get("per_action") or {})})
    lines.append("| row | " + " | ".join(actions) + " |")
    lines.append("|" + "---|" * (len(actions) + 1))
    for name, row in rows.items():
        per = row.get("per_action") or {}
        lines.append(f"| {name} | " + " | ".join(_fmt(per.get(a)) for a in actions) + " |")
    if report.get("motion_control"):
        from evaluation.mechanism.motion import markdown_section

        lines += markdown_section(report["motion_control"])
    if report.get("pose_control"):
        from evaluation.mechanism.pose_control import markdown_section as pose_section

        lines += pose_section(report["pose_control"])
    if report.get("identity"):
        from evaluation.mechanism.identity import markdown_section as identity_section

        lines += identity_section(report["identity"])
    if report.get("refocus"):
        from evaluation.mechanism.refocus import markdown_section as refocus_section

        lines += refocus_section(report["refocus"])
    if report.get("lip_sync"):
        from evaluation.mechanism.lip_sync import markdown_section as lip_section

        lines += lip_section(report["lip_sync"])
    lines += ["", "## Notes", ""] + [f"- {note}" for note in report.get("notes", [])]
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    fig.tight_layout(rect=rect)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_loss_curves(runs: Mapping[str, Path], path: Path) -> Path | None:
    """Training loss (smoothed over 10 logs) of every run's metrics.jsonl."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    drawn = False
    for name, folder in runs.items():
        log = folder / "metrics.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(line) for line in log.read_text().splitlines() if '"loss"' in line]
        if not rows:
            continue
        steps = np.array([r["step"] for r in rows])
        loss = np.array([r["loss"] for r in rows])
        k = min(10, len(loss))
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, label=name)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("flow loss")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_learning_curves(curves: Mapping[str, Sequence[tuple[int, float]]], baselines: Mapping[str, float], path: Path) -> Path | None:
    """New-action accuracy of each arm's snapshots against stage-2 steps, with baseline lines."""
    if not any(curves.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for name, points in curves.items():
        if points:
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o", label=name)
    for i, (name, value) in enumerate(baselines.items()):
        if isinstance(value, float) and math.isfinite(value):
            ax.axhline(value, linestyle="--", linewidth=1, color=plt.get_cmap("Greys")(0.4 + 0.2 * i), label=name)
    ax.set_xlabel("stage-2 step")
    ax.set_ylabel("new-action accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_timelines(windows: Sequence[tuple[str, list[dict]]], labels: Mapping[str, Mapping[str, list[str]]], fps: float,
                   path: Path) -> Path | None:
    """One panel per window: the intended phases, then each row's per-frame reader labels."""
    if not windows or not labels:
        return None
    plt = _pyplot()
    names = list(labels)
    vocab = sorted({str(p["label"]) for _, ph in windows for p in ph} | {x for lab in labels.values() for seq in lab.values() for x in seq})
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(vocab)}
    fig, axes = plt.subplots(len(windows), 1, figsize=(8.0, 0.45 * (len(names) + 1) * len(windows) + 0.6), squeeze=False)
    for ax, (key, phases) in zip(axes[:, 0], windows):
        rows = [("intended", None)] + [(n, labels[n].get(key)) for n in names]
        for r, (name, seq) in enumerate(rows):
            y = len(rows) - 1 - r
            if seq is None and name == "intended":
                for p in phases:
                    ax.broken_barh([(float(p["start_s"]), float(p["end_s"]) - float(p["start_s"]))], (y + 0.1, 0.8),
                                   color=colours[str(p["label"])], edgecolor="black")
                continue
            if not seq:
                continue
            start = 0
            for t in range(1, len(seq) + 1):
                if t == len(seq) or seq[t] != seq[start]:
                    ax.broken_barh([(start / fps, (t - start) / fps)], (y + 0.1, 0.8), color=colours[seq[start]])
                    start = t
        ax.set_yticks([len(rows) - 1 - r + 0.5 for r in range(len(rows))], [n for n, _ in rows], fontsize=7)
        ax.set_title(key, fontsize=8)
        ax.set_xlim(0, max(len(s) for lab in labels.values() for s in lab.values()) / fps)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in vocab]
    fig.legend(handles, vocab, fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("time (s)")
    return _save(plt, fig, path, rect=(0, 0, 0.8, 1))


def contact_sheet(videos: Mapping[str, Mapping[str, np.ndarray]], keys: Sequence[str], times: Sequence[int], path: Path,
                  scale: int = 2) -> Path | None:
    """A grid per window: one row per source (truth first), one column per frame index in `times`."""
    from PIL import Image, ImageDraw

    blocks = []
    for key in keys:
        for name, vids in videos.items():
            if key not in vids:
                continue
            frames = vids[key]
            row = np.concatenate([frames[min(t, len(frames) - 1)] for t in times], axis=1)
            row = np.kron(row, np.ones((scale, scale, 1), dtype=np.uint8))
            label = np.full((row.shape[0], 150, 3), 255, np.uint8)
            img = Image.fromarray(label)
            ImageDraw.Draw(img).text((4, 4), f"{name}\n{key[-16:]}", fill=(0, 0, 0))
            blocks.append(np.concatenate([np.asarray(img), row], axis=1))
    if not blocks:
        return None
    width = max(b.shape[1] for b in blocks)
    sheet = np.concatenate([np.pad(b, ((0, 2), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path
