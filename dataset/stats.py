"""Corpus statistics from the manifest: clips, hours, phases and words per clip, rejections."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dataset.manifest import read_manifest
from dataset.storage import check_readable
from dataset.validate import manifest_path


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(arr.mean()), 3),
        "median": round(float(np.median(arr)), 3),
        "min": round(float(arr.min()), 3),
        "max": round(float(arr.max()), 3),
    }


def corpus_stats(root: str | Path) -> dict[str, Any]:
    """Figures for the corpus at `root` (a folder or an object-storage URL); reads only the
    manifest, so it is fast on any size."""
    check_readable(str(root))  # object storage: bad credentials or a missing bucket, one clear error
    table = read_manifest(manifest_path(root))
    rows = table.to_pylist()
    kept = [r for r in rows if r["status"] == "ok"]
    not_kept = [r for r in rows if r["status"] != "ok"]

    def present(col: str) -> list[Any]:
        return [r[col] for r in kept if r[col] is not None]

    return {
        "corpus": str(root),
        "candidates": len(rows),
        "clips": len(kept),
        "sources": len({r["source_sha256"] or r["source_uri"] for r in rows}),
        "hours": round(sum(present("duration_s")) / 3600, 4),
        "shards": len({r["shard"] for r in kept}),
        "status": dict(sorted(Counter(r["status"] for r in rows).items())),
        "clip_seconds": _summary(present("duration_s")),
        "phases_per_clip": _summary(present("num_phases")),
        "words_per_clip": _summary(present("num_words")),
        "clips_without_caption": sum(r["num_phases"] is None for r in kept),
        "clips_without_transcript": sum(r["num_words"] is None for r in kept),
        "rejection_reasons": dict(
            Counter(f"{r['status']}: {r['reason']}" for r in not_kept).most_common()
        ),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    lines = [f"corpus  {stats['corpus']}"]

    def row(name: str, value: Any) -> None:
        lines.append(f"  {name:<26} {value}")

    row("clips kept", stats["clips"])
    row("candidates (all rows)", stats["candidates"])
    row("sources", stats["sources"])
    row("hours kept", f"{stats['hours']:.4f}")
    row("shards", stats["shards"])
    row("status", ", ".join(f"{k} {v}" for k, v in stats["status"].items()) or "-")
    for name in ("clip_seconds", "phases_per_clip", "words_per_clip"):
        s = stats[name]
        row(name.replace("_", " "), "-" if s is None else f"mean {s['mean']:g}  median {s['median']:g}  min {s['min']:g}  max {s['max']:g}")
    row("clips without caption", stats["clips_without_caption"])
    row("clips without transcript", stats["clips_without_transcript"])
    lines.append("  rejection reasons" + ("" if stats["rejection_reasons"] else "          none"))
    for reason, count in stats["rejection_reasons"].items():
        lines.append(f"    {count:>6}  {reason}")
    return "\n".join(lines)


def stats_json(stats: dict[str, Any]) -> str:
    return json.dumps(stats, indent=2, sort_keys=True)
