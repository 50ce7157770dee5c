"""Evaluation reports: one JSON, one Markdown table (runs side by side) and PNG plots.

A report is `{run_name: {metric_name: value, ...}}` plus free-form `protocol` (how each metric was
computed: resize mode, clip/frame counts, fps, offsets) and `skipped` ({metric: reason}) per run.
Plots: one bar chart per metric across runs, and per-phase timelines (ground-truth phases above
detected actions) for a few samples. matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# Metric -> (column title, better direction) for the table; unknown metrics are shown as named.
METRIC_INFO: dict[str, tuple[str, str]] = {
    "fid": ("FID ↓", "lower"),
    "fvd": ("FVD ↓", "lower"),
    "sync_c": ("Sync-C ↑", "higher"),
    "sync_d": ("Sync-D ↓", "lower"),
    "abs_offset_mean": ("|AV offset| ↓", "lower"),
    "identity": ("ID sim ↑", "higher"),
    "phase_accuracy": ("Phase acc ↑", "higher"),
    "exclusive_accuracy": ("Excl. acc ↑", "higher"),
    "temporal_precision": ("Temp. prec ↑", "higher"),
}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
    # JSON has no NaN: write null so any JSON reader accepts the file.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(report), indent=2, sort_keys=True, default=_json_default) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a report
    return path


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.1f}"
    return str(value)


def markdown_table(metrics: Mapping[str, Mapping[str, Any]], skipped: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """Runs as rows, metrics as columns; a skipped metric shows "skipped" and its reason below."""
    skipped = skipped or {}
    names = [m for m in METRIC_INFO if any(m in r or m in skipped.get(run, {}) for run, r in metrics.items())]
    names += sorted({m for r in metrics.values() for m in r} - set(names))
    header = "| run | " + " | ".join(METRIC_INFO.get(m, (m, ""))[0] for m in names) + " |"
    lines = [header, "|---|" + "---:|" * len(names)]
    for run, values in metrics.items():
        cells = ["skipped" if m in skipped.get(run, {}) and m not in values else _fmt(values.get(m)) for m in names]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    reasons = sorted({(m, why) for run in skipped.values() for m, why in run.items()})
    if reasons:
        lines += ["", "Skipped:"] + [f"- {m}: {why}" for m, why in reasons]
    return "\n".join(lines) + "\n"


def write_markdown(report: Mapping[str, Any], path: str | Path) -> Path:
    path = Path(path)
    text = "# Evaluation report\n\n" + markdown_table(report["metrics"], report.get("skipped"))
    protocol = report.get("protocol") or {}
    if protocol:
        text += "\n## Protocol\n\n" + "\n".join(f"- **{k}**: {_fmt(v) if not isinstance(v, Mapping) else json.dumps(_clean(v), default=_json_default)}"
                                                for k, v in protocol.items()) + "\n"
    path.write_text(text)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_metric_bars(metrics: Mapping[str, Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """One PNG per metric: a bar per run. Metrics without a finite value anywhere are left out."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = sorted({m for r in metrics.values() for m, v in r.items() if isinstance(v, (int, float)) and math.isfinite(v)})
    paths = []
    for name in names:
        runs = [run for run, r in metrics.items() if isinstance(r.get(name), (int, float)) and math.isfinite(r[name])]
        values = [float(metrics[run][name]) for run in runs]
        fig, ax = plt.subplots(figsize=(max(3.0, 1.2 * len(runs) + 1.5), 3.0))
        bars = ax.bar(range(len(runs)), values, color="tab:blue")
        ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=8)
        ax.set_xticks(range(len(runs)), runs, rotation=20, ha="right", fontsize=8)
        title, better = METRIC_INFO.get(name, (name, ""))
        ax.set_title(f"{title}" + (f" ({better} is better)" if better else ""), fontsize=9)
        fig.tight_layout()
        path = out_dir / f"metric_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_phase_timeline(
    key: str, phases: Sequence[Mapping[str, Any]], predicted: Sequence[str], fps: float, path: str | Path,
) -> Path:
    """Ground-truth phases (top row) against per-frame detected actions (bottom row) for one sample."""
    plt = _pyplot()
    labels = sorted({str(p["label"]) for p in phases} | {str(x) for x in predicted})
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(8.0, 1.8))
    for p in phases:
        ax.broken_barh([(float(p["start_s"]), float(p["end_s"]) - float(p["start_s"]))], (1.1, 0.8),
                       color=colours[str(p["label"])], edgecolor="black")
    # Runs of equal consecutive labels become one bar.
    start = 0
    for t in range(1, len(predicted) + 1):
        if t == len(predicted) or predicted[t] != predicted[start]:
            ax.broken_barh([(start / fps, (t - start) / fps)], (0.1, 0.8), color=colours[str(predicted[start])])
            start = t
    ax.set_yticks([0.5, 1.5], ["detected", "ground truth"])
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max([len(predicted) / fps] + [float(p["end_s"]) for p in phases]))
    ax.set_title(key, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in labels]
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """report.json + report.md + plots/metric_*.png (+ plots/timeline_*.png from report["timelines"]).

    `report["timelines"]`, when present, is a list of {run, key, phases, predicted, fps}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timelines = report.get("timelines") or []
    body = {k: v for k, v in report.items() if k != "timelines"}
    files = {"json": write_json(body, out_dir / "report.json"), "markdown": write_markdown(body, out_dir / "report.md")}
    files["plots"] = plot_metric_bars(report["metrics"], out_dir / "plots")
    files["timelines"] = [
        plot_phase_timeline(f"{t['run']}: {t['key']}", t["phases"], t["predicted"], t["fps"],
                            out_dir / "plots" / f"timeline_{t['run']}_{t['key']}.png")
        for t in timelines
    ]
    return files
