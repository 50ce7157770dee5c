"""The Ray Data graph of `actavatar data run`:
hash → probe → analyse → plan → cut → (per clip) sync → asr → caption → pack (per shard group).

Local in-process Ray by default, an existing cluster with `ray_address` (the toolkit must be
installed on the cluster's nodes). Source stages run per source, clip stages on batches of clips
from any sources, all as Ray Data actor pools with durable ledger records (`annotate.ledger`).
The driver only counts finished rows: when every source of a shard group is through, a Ray task
packs that group (`annotate.pack`) on whichever node is free, so shards appear while the run goes
on, the driver holds no clip data, and a killed run keeps every committed group. The output may be
a local folder or any fsspec URL (`s3://bucket/corpus`); nothing assumes a shared filesystem.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from annotate.asr_models import check_asr_models
from annotate.caption import check_caption_setup
from annotate.config import AnnotateConfig, config_hash
from annotate.face_detector import ensure_face_model
from annotate.face_landmarks import ensure_landmarker_bundle
from annotate.ledger import GROUPS_DIRNAME, Ledger
from annotate.pack import group_name, pack_group
from annotate.progress import StageProgress
from annotate.sources import resolve_inputs, source_sha256
from annotate.stages import SOURCE_ROW_STAGES, clip_rows, clip_stages, initial_row
from dataset.manifest import read_manifest
from dataset.schema import MANIFEST_FILENAME
from dataset.storage import Store, check_readable

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


def shard_groups(sources: list[dict[str, Any]], group_size: int) -> list[list[dict[str, Any]]]:
    """Sources ordered by id, cut into groups of `group_size` (deterministic for a set of inputs)."""
    ordered = sorted(sources, key=lambda r: r["source_id"])
    return [ordered[i : i + group_size] for i in range(0, len(ordered), group_size)]


class GroupTracker:
    """Counts finished rows on the driver and starts a group's pack task when the group is complete.

    Memory: the group membership (ids and URIs, as the inputs list) and counters of the sources in
    flight; no clip data ever reaches the driver.
    """

    def __init__(self, cfg: AnnotateConfig, out: Store, groups: dict[int, list[dict[str, Any]]],
                 duplicates: dict[int, list[dict[str, Any]]], max_in_flight: int) -> None:
        import ray

        self.cfg, self.out, self.groups, self.duplicates = cfg, out, groups, duplicates
        self.waiting = {g: len(members) for g, members in groups.items()}  # sources not through yet
        self.rows_left: dict[str, int] = {}  # source -> rows still expected
        self.in_flight: list[Any] = []
        self.max_in_flight = max_in_flight
        self.summaries: list[dict[str, Any]] = []
        self._task = ray.remote(num_cpus=0, max_retries=2)(pack_group)  # light: I/O and JSON

    def add(self, row: dict[str, Any]) -> None:
        source, group = row["source_id"], int(row["group"])
        left = self.rows_left.get(source, int(row["rows"])) - 1
        if left > 0:
            self.rows_left[source] = left
            return
        self.rows_left.pop(source, None)
        self.waiting[group] -= 1
        if self.waiting[group] == 0:
            self._start(group)

    def _start(self, group: int) -> None:
        import ray

        members = [(m["source_id"], m["uri"], m["sha256"]) for m in self.groups[group]]
        while len(self.in_flight) >= self.max_in_flight:
            self._collect(ray.wait(self.in_flight, num_returns=1)[0])
        self.in_flight.append(self._task.remote(self.cfg, self.out.root, group, members, self.duplicates.get(group, [])))

    def _collect(self, done: list[Any]) -> None:
        import ray

        for ref in done:
            self.in_flight.remove(ref)
            self.summaries.append(ray.get(ref))

    def finish(self) -> list[dict[str, Any]]:
        unfinished = [g for g, n in self.waiting.items() if n > 0]
        if unfinished:
            raise RuntimeError(f"shard groups {unfinished[:5]} never completed: rows went missing in the pipeline")
        if self.in_flight:
            self._collect(list(self.in_flight))
        return self.summaries


def run_pipeline(
    cfg: AnnotateConfig, input_spec: str, out_dir: str | Path, *, ray_address: str | None = None, worker_logs: bool = False,
    progress_every: float = 0.0,
) -> dict[str, Any]:
    """Run (or resume) the pipeline; returns the summary dict that the CLI prints.

    `out_dir` is a local folder or an fsspec URL. `progress_every` > 0 logs one line per stage that
    often (seconds) to stderr (`annotate.progress`).
    """
    import ray
    import ray.data

    started = time.perf_counter()
    out = Store(out_dir)
    check_readable(input_spec)
    uris = resolve_inputs(input_spec)
    check_asr_models(cfg.asr)  # missing models stop the run here, with one clear message
    ensure_face_model(cfg.face.model_path or None)  # fetched once here, not by every actor at once
    measure_pose = cfg.pose.enabled and cfg.pose_backend == "mediapipe"
    if cfg.face.confirm == "landmarks" or measure_pose:  # the face filter's mesh, and the keypoints' lips
        ensure_landmarker_bundle(cfg.face.landmark_bundle or None)
    if measure_pose:  # the keypoint models, built once here too
        from annotate.body_landmarks import ensure_pose_bundle
        from annotate.hand_landmarks import ensure_hand_bundle

        ensure_pose_bundle(cfg.pose.model_path or None)
        if cfg.pose.hands:
            ensure_hand_bundle(cfg.pose.hand_model_path or None)
    check_caption_setup(cfg.caption)
    out.check_writable()  # a bad credential or bucket stops the run here, before any work
    ledger = Ledger(out)
    ledger.check_config(config_hash(cfg))
    ledger.store.write_bytes("inputs.json", json.dumps(uris).encode())
    _init_ray(ray_address, cfg.workers, worker_logs)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = False
    sources, duplicates = _source_rows(uris, cfg.workers)
    groups = dict(enumerate(shard_groups(sources, cfg.group_size)))
    group_of = {m["source_id"]: g for g, members in groups.items() for m in members}
    duplicates_by_group: dict[int, list[dict[str, Any]]] = {}
    for row in duplicates:
        duplicates_by_group.setdefault(group_of[row["source_sha256"][:16]], []).append(row)
    committed = {g: record for g in groups if (record := ledger.group_record(g)) is not None}
    todo = [(g, m) for g, members in groups.items() if g not in committed for m in members]
    log.info("%d sources (%d duplicates) in %d shard groups (%d already packed)",
             len(sources), len(duplicates), len(groups), len(committed))

    summaries = list(committed.values())
    stage_names = [stage.name for stage in (*SOURCE_ROW_STAGES, *clip_stages(cfg))]
    with StageProgress(ledger, len(sources), stage_names, groups=len(groups), interval=progress_every) as progress:
        if todo:
            tracker = GroupTracker(cfg, out, {g: groups[g] for g in {g for g, _ in todo}}, duplicates_by_group,
                                   max_in_flight=max(2, cfg.workers))
            for row in _dataset(cfg, out, todo, ray).iter_rows():
                tracker.add(row)
            summaries += tracker.finish()
    if progress_every > 0:
        progress.report()  # the final counts
    summary = _finish(out, ledger, len(groups), summaries)
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _dataset(cfg: AnnotateConfig, out: Store, todo: list[tuple[int, dict[str, Any]]], ray: Any):
    """The Ray Data graph over the sources still to do (ordered by group, so groups finish in turn)."""
    ds = ray.data.from_items([initial_row(m["uri"], m["source_id"], m["sha256"], g) for g, m in todo],
                             override_num_blocks=max(1, len(todo)))
    # Every actor stage gets `workers` actors (never more than there are sources: an actor that gets
    # no row still pays its model loading); each reserves a CPU share so that all pools fit in
    # `workers` CPUs together (with 1 CPU each, downstream pools starve upstream ones and the
    # streaming executor waits forever). A stage's actors are busy only while data reaches them.
    actors = max(1, min(cfg.workers, len(todo)))
    per_clip = clip_stages(cfg)
    share = 1.0 / sum(stage.uses_actor for stage in (*SOURCE_ROW_STAGES, *per_clip))
    cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
    kwargs = {"fn_constructor_kwargs": {"cfg": cfg, "out_dir": out.root}, "concurrency": actors, "num_cpus": share}
    for stage in SOURCE_ROW_STAGES:
        if stage.uses_actor:
            ds = ds.map(stage, **kwargs, **stage.ray_options(cfg, cluster_gpus))
        else:  # cheap stage: Ray Data fuses these tasks with their neighbours
            ds = ds.map(stage(cfg, out.root), num_cpus=share)
    ds = ds.flat_map(clip_rows, num_cpus=share)
    for stage in per_clip:  # batches of clips from any sources
        ds = ds.map_batches(stage, batch_size=stage.batch_size(cfg), **kwargs, **stage.ray_options(cfg, cluster_gpus))
    return ds.select_columns(["source_id", "group", "rows"])


MOTION_COLUMNS = ("motion_face", "motion_body")  # the manifest's `<column>_level` are their corpus levels


def _finish(out: Store, ledger: Ledger, num_groups: int, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the groups' manifest parts and audits (one group at a time: flat memory) and sum their summaries."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataset.pose import apply_levels, level_edges
    from dataset.schema import MANIFEST_SCHEMA

    def part(group: int):
        with ledger.store.local_file(f"{GROUPS_DIRNAME}/{group_name(group)}.parquet") as path:
            return read_manifest(path)

    # Corpus motion levels: quantiles of the kept clips' intensities (two floats a clip in memory).
    values: dict[str, list[float | None]] = {column: [] for column in MOTION_COLUMNS}
    for group in range(num_groups):
        table = part(group).select(list(MOTION_COLUMNS))
        for column in MOTION_COLUMNS:
            values[column] += table.column(column).to_pylist()
    edges = {column: level_edges(values[column]) for column in MOTION_COLUMNS}
    with tempfile.TemporaryDirectory(prefix="actavatar-manifest-") as tmp:
        manifest, audit = Path(tmp) / MANIFEST_FILENAME, Path(tmp) / CAPTION_AUDIT
        audit_lines = 0
        with pq.ParquetWriter(manifest, MANIFEST_SCHEMA, compression="zstd") as writer, open(audit, "wb") as audit_out:
            for group in range(num_groups):  # group order = key order: groups hold sources by id
                name = group_name(group)
                table = part(group)
                for column in MOTION_COLUMNS:
                    levels = pa.array(apply_levels(table.column(column).to_pylist(), edges[column]), pa.int32())
                    table = table.set_column(table.schema.get_field_index(f"{column}_level"), f"{column}_level", levels)
                if table.num_rows:
                    writer.write_table(table)
                lines = ledger.store.read_bytes(f"{GROUPS_DIRNAME}/{name}.audit.jsonl")
                audit_out.write(lines)
                audit_lines += lines.count(b"\n")
            if not num_groups:
                writer.write_table(pa.Table.from_pylist([], schema=MANIFEST_SCHEMA))
        out.put_file(manifest, MANIFEST_FILENAME)
        if audit_lines:
            out.put_file(audit, CAPTION_AUDIT)
    summaries = sorted(summaries, key=lambda s: s["group"])
    reasons: Counter[str] = Counter()
    for s in summaries:
        reasons.update(s["not_kept"])
    return {
        "output": out.root,
        "sources": sum(s["sources"] for s in summaries),
        "sources_failed": sum(s["sources_failed"] for s in summaries),
        "clips_kept": sum(s["clips_kept"] for s in summaries),
        "clip_candidates": sum(s["clip_candidates"] for s in summaries),
        "not_kept": dict(reasons.most_common()),
        "hours_in": round(sum(s["hours_in"] for s in summaries), 4),
        "hours_out": round(sum(s["seconds_out"] for s in summaries) / 3600, 4),
        "shards": [name for s in summaries for name in s["shards"]],
        "groups": num_groups,
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
    """Per-stage progress of a run (finished or not); `out_dir` may be a URL."""
    out = Store(out_dir)
    ledger = Ledger(out)
    if not ledger.exists():
        raise FileNotFoundError(f"{out_dir}: no run here (no _work/ folder)")
    inputs = len(ledger.store.read_json("inputs.json")) if ledger.store.exists("inputs.json") else None
    paths = ledger.scan()
    clips, groups = ledger.clips_and_groups(paths)
    packed = None
    if out.exists(MANIFEST_FILENAME):
        with out.local_file(MANIFEST_FILENAME) as manifest:
            packed = dict(Counter(read_manifest(manifest).column("status").to_pylist()))
    return {"output": out.root, "inputs": inputs, "stages": ledger.counts(paths), "clips_cut": clips,
            "groups_packed": groups, "packed": packed}
