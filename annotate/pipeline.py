"""The Ray Data graph of `actavatar data run`: hash → probe → analyse → plan → cut → sync → asr → caption → pack.

Local in-process Ray by default, an existing cluster with `ray_address` (the toolkit must be
installed on the cluster's nodes). Per-source stages run as Ray Data actor pools with durable
ledger records (`annotate.ledger`); packing runs on the driver at the end, from the ledger, in
key order, so a resumed run writes the same shards as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from annotate.annotation import with_asr, with_caption, with_sync
from annotate.asr_models import check_asr_models
from annotate.caption import check_caption_setup
from annotate.config import AnnotateConfig, config_hash
from annotate.face_detector import ensure_face_model
from annotate.face_landmarks import ensure_landmarker_bundle
from annotate.ledger import Ledger
from annotate.progress import StageProgress
from annotate.sources import clip_key, resolve_inputs, source_sha256
from annotate.stages import clip_files, initial_row, row_stages, sync_verdict
from dataset.annotation import parse_annotation
from dataset.atomic import atomic_write_bytes
from dataset.writer import ShardWriter
from dataset.schema import VIDEO_FPS

log = logging.getLogger(__name__)
CAPTION_AUDIT = "captions_audit.jsonl"  # raw VLM outputs, repairs and verdicts of every captioned clip


def _init_ray(address: str | None, workers: int, worker_logs: bool) -> None:
    import ray

    if ray.is_initialized():
        return
    # Workers' output is off by default: mediapipe/LiteRT print every model load from C++, and
    # per-source failures reach the manifest anyway. `-v` shows it.
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": worker_logs}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=workers, **kwargs)


def _source_rows(uris: list[str], workers: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hash every source (threads: hashing is I/O and hashlib releases the GIL); the second
    list holds manifest rows for byte-identical duplicates of earlier sources."""
    with ThreadPoolExecutor(max(2, 2 * workers)) as pool:
        hashes = list(pool.map(source_sha256, uris))
    unique, duplicates, seen = [], [], {}
    for uri, sha in zip(uris, hashes):
        source_id = sha[:16]
        if source_id in seen:
            duplicates.append({"key": f"{source_id}_dup{len(duplicates):04d}", "source_uri": uri,
                               "source_sha256": sha, "status": "rejected", "stage": "hash",
                               "reason": "duplicate_source", "detail": f"same bytes as {seen[source_id]}"})
        else:
            seen[source_id] = uri
            unique.append({"uri": uri, "sha256": sha, "source_id": source_id})
    return unique, duplicates


def run_pipeline(
    cfg: AnnotateConfig, input_spec: str, out_dir: str | Path, *, ray_address: str | None = None, worker_logs: bool = False,
    progress_every: float = 0.0,
) -> dict[str, Any]:
    """Run (or resume) the pipeline; returns the summary dict that the CLI prints.

    `progress_every` > 0 logs one line per stage that often (seconds) to stderr (`annotate.progress`).
    """
    import ray
    import ray.data

    started = time.perf_counter()
    out = Path(out_dir)
    uris = resolve_inputs(input_spec)
    check_asr_models(cfg.asr)  # missing models stop the run here, with one clear message
    ensure_face_model(cfg.face.model_path or None)  # fetched once here, not by every actor at once
    if cfg.face.confirm == "landmarks":
        ensure_landmarker_bundle(cfg.face.landmark_bundle or None)
    check_caption_setup(cfg.caption)
    ledger = Ledger(out)
    ledger.check_config(config_hash(cfg))
    atomic_write_bytes(ledger.root / "inputs.json", json.dumps(uris).encode())
    _init_ray(ray_address, cfg.workers, worker_logs)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = False
    sources, duplicates = _source_rows(uris, cfg.workers)
    log.info("%d sources (%d duplicates)", len(sources), len(duplicates))

    ds = ray.data.from_items([initial_row(r["uri"], r["source_id"], r["sha256"]) for r in sources],
                             override_num_blocks=max(1, len(sources)))
    # Every actor stage gets `workers` actors (never more than there are sources: an actor that gets
    # no row still pays its model loading); each reserves a CPU share so that all pools fit in
    # `workers` CPUs together (with 1 CPU each, downstream pools starve upstream ones and the
    # streaming executor waits forever). A stage's actors are busy only while data reaches them.
    actors = max(1, min(cfg.workers, len(sources)))
    stages = row_stages(cfg)
    share = 1.0 / sum(stage.uses_actor for stage in stages)
    cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
    for stage in stages:
        if stage.uses_actor:
            ds = ds.map(stage, fn_constructor_kwargs={"cfg": cfg, "out_dir": str(out)}, concurrency=actors,
                        num_cpus=share, **stage.ray_options(cfg, cluster_gpus))
        else:  # cheap stage: Ray Data fuses these tasks with their neighbours
            ds = ds.map(stage(cfg, str(out)), num_cpus=share)
    with StageProgress(ledger, len(sources), [stage.name for stage in stages], interval=progress_every) as progress:
        finished = {row["source_id"]: (row["uri"], json.loads(row["state"])) for row in ds.iter_rows()}
    if progress_every > 0:
        progress.report()  # the final counts
    summary = pack(cfg, out, finished, duplicates)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _manifest_rows(source_id: str, uri: str, state: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], int]:
    """Rejected/failed rows of one source, the keys of its kept clips, its clip candidates.

    A clip is kept when it passed the face filter, was cut, the sync filter (when on) kept it, the
    ASR stage kept it and, with a VLM captioner, the caption stage captioned it.
    """
    base = {"source_uri": uri, "source_sha256": state["sha256"]}
    error = state.get("error")
    if error and error["stage"] in ("probe", "analyse", "plan"):
        return [{**base, "key": source_id, "status": error["status"], "stage": error["stage"],
                 "reason": error["reason"], "detail": error["detail"],
                 "duration_s": (state.get("probe") or {}).get("duration_s")}], [], 0
    rows, kept = [], []
    asr = (state.get("asr") or {}).get("clips", {})
    captions = (state.get("caption") or {}).get("clips", {})
    for clip in state["plan"]:
        key = clip_key(source_id, clip["index"])
        figures = clip["face"] or {}
        row = {**base, "key": key, "start_s": clip["start"] / VIDEO_FPS, "end_s": clip["stop"] / VIDEO_FPS,
               "duration_s": (clip["stop"] - clip["start"]) / VIDEO_FPS, "fps": VIDEO_FPS,
               "face_detected_ratio": figures.get("detected_ratio"), "face_max_faces": figures.get("max_faces")}
        if clip["status"] != "ok":
            rows.append({**row, "status": clip["status"], "stage": "shots" if clip["reason"] == "shot_too_short" else "face",
                         "reason": clip["reason"], "detail": clip["detail"]})
        elif error:  # the cut or ASR stage failed for this source: its kept clips become failed rows
            rows.append({**row, "status": "failed", "stage": error["stage"], "reason": error["reason"], "detail": error["detail"]})
        elif (sync := sync_verdict(state, key)) is not None and sync["status"] != "ok":
            rows.append({**row, "status": sync["status"], "stage": "sync", "reason": sync["reason"], "detail": sync["detail"],
                         "av_offset_frames": sync["offset_frames"], "av_sync_confidence": sync["confidence"]})
        elif asr[key]["status"] != "ok":
            result = asr[key]
            rows.append({**row, "status": result["status"], "stage": "asr", "reason": result["reason"],
                         "detail": result["detail"], "speech_ratio": result["speech_ratio"],
                         "language": result["language"], "num_words": result["num_words"]})
        elif key in captions and captions[key]["status"] != "ok":
            result = captions[key]
            rows.append({**row, "status": "failed", "stage": "caption", "reason": result["reason"], "detail": result["detail"]})
        else:
            kept.append(key)
    return rows, kept, len(state["plan"])


def pack(cfg: AnnotateConfig, out: Path, finished: dict[str, tuple[str, dict[str, Any]]], duplicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Write shards + manifest from the ledger, in key order (deterministic)."""
    rows: list[dict[str, Any]] = list(duplicates)
    kept: list[tuple[str, str, dict[str, Any]]] = []
    audit: list[dict[str, Any]] = []  # every VLM caption attempt, raw output included
    candidates = 0
    hours_in = 0.0
    for source_id, (uri, state) in finished.items():
        hours_in += ((state.get("probe") or {}).get("duration_s") or 0.0) / 3600
        source_rows, keys, count = _manifest_rows(source_id, uri, state)
        rows += source_rows
        candidates += count
        kept += [(key, source_id, state) for key in keys]
        audit += [{"key": key, **clip} for key, clip in ((state.get("caption") or {}).get("clips") or {}).items()]
    seconds_out = 0.0
    truth = None
    if cfg.caption.backend == "truth":
        from annotate.truth_captions import MODEL_NAME, TruthCaptioner  # imports the synth package: only when used

        truth = TruthCaptioner(cfg.caption.truth, min_phase_s=cfg.caption.min_phase_s)
    with ShardWriter(out, cfg.pack, overwrite=True) as writer:
        for key, source_id, state in sorted(kept, key=lambda item: item[0]):
            files, asr, last_stage = clip_files(out, source_id, key, state), state["asr"], "asr"
            doc = with_sync(parse_annotation(files["json"].read_bytes()), sync_verdict(state, key),
                            cfg.sync.syncnet if cfg.sync.resolved_method == "syncnet" else "blazeface-mouth-envelope")
            doc = with_asr(doc, asr["clips"][key], asr["models"])
            if truth is not None:
                doc = with_caption(doc, truth(doc["source"]["uri"], doc["source"]["start_s"], doc["source"]["end_s"]),
                                   {"caption": MODEL_NAME})
            elif state.get("caption"):
                clip, provenance = state["caption"]["clips"][key], state["caption"]["provenance"]
                doc = with_caption(doc, clip["caption"], {"vlm": provenance["model"]},
                                   {**provenance, "attempts": len(clip["attempts"]), "repairs": clip["repairs"]})
                last_stage = "caption"
            writer.write({"__key__": key, "json": doc, "mp4": files["mp4"].read_bytes(), "wav": files["wav"].read_bytes()},
                         row={"stage": last_stage})
            seconds_out += doc["video"]["duration_s"]
        for row in rows:
            writer.add_row(row)
    if audit:
        lines = b"".join(json.dumps(a, ensure_ascii=False, sort_keys=True).encode() + b"\n" for a in sorted(audit, key=lambda a: a["key"]))
        atomic_write_bytes(out / CAPTION_AUDIT, lines)
    reasons = Counter(f"{r['status']}: {r['reason']}" for r in rows)
    return {
        "output": str(out),
        "sources": len(finished) + len(duplicates),
        "sources_failed": sum(1 for _, s in finished.values() if (s.get("error") or {}).get("status") == "failed"),
        "clips_kept": len(kept),
        "clip_candidates": candidates,
        "not_kept": dict(reasons.most_common()),
        "hours_in": round(hours_in, 4),
        "hours_out": round(seconds_out / 3600, 4),
        "shards": writer.shards_written,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"run finished in {summary.get('seconds', 0):.1f} s -> {summary['output']}",
        f"  sources        {summary['sources']} ({summary['sources_failed']} failed)",
        f"  clips kept     {summary['clips_kept']} of {summary['clip_candidates']} candidates, in {len(summary['shards'])} shard(s)",
        f"  hours in/out   {summary['hours_in']:.4f} / {summary['hours_out']:.4f}",
        "  not kept" + ("       none" if not summary["not_kept"] else ""),
    ]
    lines += [f"    {count:>6}  {reason}" for reason, count in summary["not_kept"].items()]
    return "\n".join(lines)


def run_status(out_dir: str | Path) -> dict[str, Any]:
    """Per-stage progress of a run (finished or not)."""
    ledger = Ledger(out_dir)
    if not ledger.root.is_dir():
        raise FileNotFoundError(f"{out_dir}: no run here (no {ledger.root.name}/ folder)")
    inputs_file = ledger.root / "inputs.json"
    inputs = len(json.loads(inputs_file.read_text())) if inputs_file.is_file() else None
    clips = 0
    for source in ledger.root.iterdir():
        record = ledger.get(source.name, "cut") if source.is_dir() else None
        clips += len(record.get("ok") or []) if record else 0
    manifest = Path(out_dir) / "manifest.parquet"
    packed = None
    if manifest.is_file():
        from dataset.manifest import read_manifest

        packed = dict(Counter(read_manifest(manifest).column("status").to_pylist()))
    return {"output": str(out_dir), "inputs": inputs, "stages": ledger.counts(), "clips_cut": clips, "packed": packed}
