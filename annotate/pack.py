"""Pack one shard group from the ledger: shards, the group's manifest rows and caption audit, commit.

A group is a run of sources (ordered by source id, `AnnotateConfig.group_size` per group). When
the last clip of its last source leaves the clip stages, the driver starts `pack_group` as a Ray
task on any node; the task reads everything it needs from the ledger (never from the driver),
writes `shards/shard-GGGGGG-PPP.tar` (+ each shard's `.parquet` rows) in key order, then the
group's rows and audit under `_work/groups/`, and last the group record, which commits it. A
group whose record exists is skipped by a rerun; one without is packed again from the start, and
gives the same bytes (same sources, same ledger records, same order).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from annotate.annotation import with_asr, with_caption, with_sync
from annotate.config import AnnotateConfig
from annotate.ledger import CLIP_STAGES, GROUPS_DIRNAME, SOURCE_STAGES, Ledger
from annotate.sources import clip_key
from annotate.stages import asr_models_provenance, clip_media
from dataset.annotation import parse_annotation
from dataset.manifest import manifest_bytes
from dataset.schema import SHARDS_DIRNAME, VIDEO_FPS
from dataset.storage import Store
from dataset.writer import ShardWriter, group_shard_prefix


def group_name(group: int) -> str:
    return f"{group:06d}"


def load_state(ledger: Ledger, cfg: AnnotateConfig, source_id: str, sha256: str) -> dict[str, Any]:
    """A finished source's results from the ledger: source stages as they were recorded, clip
    stages as `{"clips": {key: result}}` (the shape `manifest_rows` reads)."""
    state: dict[str, Any] = {"sha256": sha256, "error": None}
    for stage in SOURCE_STAGES:
        record = ledger.get(source_id, stage)
        if record is None:
            raise RuntimeError(f"{source_id}: the ledger has no {stage} record; the source did not finish")
        if "error" in record:
            state["error"] = record["error"]
            return state
        state[stage] = record["ok"]
    for stage in CLIP_STAGES:
        clips = {}
        for key in state["cut"]:
            record = ledger.get_clip(source_id, stage, key)
            if record is not None:
                clips[key] = record["result"]
        if clips:
            state[stage] = {"clips": clips}
    if "asr" in state:
        state["asr"]["models"] = asr_models_provenance(cfg)
    if "caption" in state:
        provenance = next((c["provenance"] for c in state["caption"]["clips"].values() if c.get("provenance")), None)
        state["caption"]["provenance"] = provenance
    return state


def sync_verdict(state: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The sync stage's verdict for a clip (None when the stage did not run)."""
    return ((state.get("sync") or {}).get("clips") or {}).get(key)


def manifest_rows(source_id: str, uri: str, state: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str], int]:
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
        elif error:  # the cut stage failed for this source: its kept clips become failed rows
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


def _truth_captioner(cfg: AnnotateConfig):
    if cfg.caption.backend != "truth":
        return None
    from annotate.truth_captions import TruthCaptioner  # imports the synth package: only when used

    return TruthCaptioner(cfg.caption.truth, min_phase_s=cfg.caption.min_phase_s)


def _truth_model_name() -> str:
    from annotate.truth_captions import MODEL_NAME

    return MODEL_NAME


def _remove_group_shards(out: Store, group: int) -> None:
    """An interrupted earlier attempt's shards of this group (remote: the local writer cannot see them)."""
    prefix = group_shard_prefix(group)
    for name in out.listdir(SHARDS_DIRNAME):
        if name.startswith(prefix):
            out.remove(f"{SHARDS_DIRNAME}/{name}")


def pack_group(cfg: AnnotateConfig, out_root: str, group: int, members: list[tuple[str, str, str]],
               duplicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Write group `group`'s shards and commit it; returns its summary (also its ledger record).

    Args:
        members: `(source_id, uri, sha256)` of the group's sources.
        duplicates: manifest rows of inputs whose bytes equal one of the members.
    """
    out = Store(out_root)
    ledger = Ledger(out)
    rows: list[dict[str, Any]] = list(duplicates)
    kept: list[tuple[str, str, dict[str, Any]]] = []
    audit: list[dict[str, Any]] = []
    candidates, failed, hours_in = 0, 0, 0.0
    for source_id, uri, sha in members:
        state = load_state(ledger, cfg, source_id, sha)
        hours_in += ((state.get("probe") or {}).get("duration_s") or 0.0) / 3600
        failed += (state.get("error") or {}).get("status") == "failed"
        source_rows, keys, count = manifest_rows(source_id, uri, state)
        rows += source_rows
        candidates += count
        kept += [(key, source_id, state) for key in keys]
        audit += [{"key": key, **{k: v for k, v in clip.items() if k != "provenance"}}
                  for key, clip in ((state.get("caption") or {}).get("clips") or {}).items()]
    truth = _truth_captioner(cfg)
    method = cfg.sync.syncnet if cfg.sync.resolved_method == "syncnet" else "blazeface-mouth-envelope"
    seconds_out = 0.0
    with tempfile.TemporaryDirectory(prefix="actavatar-pack-") as staging:
        # Local output: shards are written in place (atomic renames). Remote: staged here, then uploaded.
        folder = Path(out.root) if not out.remote else Path(staging)
        if out.remote:
            _remove_group_shards(out, group)
        with ShardWriter(folder, cfg.pack, overwrite=True, group=group) as writer:
            for key, source_id, state in sorted(kept, key=lambda item: item[0]):
                files, last_stage = clip_media(ledger, source_id, key, sync_verdict(state, key)), "asr"
                doc = with_sync(parse_annotation(ledger.store.read_bytes(files["json"])), sync_verdict(state, key), method)
                doc = with_asr(doc, state["asr"]["clips"][key], state["asr"]["models"])
                if truth is not None:
                    doc = with_caption(doc, truth(doc["source"]["uri"], doc["source"]["start_s"], doc["source"]["end_s"]),
                                       {"caption": _truth_model_name()})
                elif state.get("caption"):
                    clip, provenance = state["caption"]["clips"][key], state["caption"]["provenance"]
                    doc = with_caption(doc, clip["caption"], {"vlm": provenance["model"]},
                                       {**provenance, "attempts": len(clip["attempts"]), "repairs": clip["repairs"]})
                    last_stage = "caption"
                sample = {"__key__": key, "json": doc, "mp4": ledger.store.read_bytes(files["mp4"]),
                          "wav": ledger.store.read_bytes(files["wav"])}
                if doc.get("motion") is not None:  # the cut stage measured its keypoints
                    sample["pose.npy"] = ledger.store.read_bytes(files["pose"])
                writer.write(sample, row={"stage": last_stage})
                seconds_out += doc["video"]["duration_s"]
        if out.remote:
            for name in writer.shards_written:  # the rows first, the tar last: a listed tar is complete
                out.put_file(folder / SHARDS_DIRNAME / Path(name).with_suffix(".parquet").name,
                             f"{SHARDS_DIRNAME}/{Path(name).with_suffix('.parquet').name}")
                out.put_file(folder / SHARDS_DIRNAME / name, f"{SHARDS_DIRNAME}/{name}")
    rows = writer.rows + rows
    name = group_name(group)
    ledger.store.write_bytes(f"{GROUPS_DIRNAME}/{name}.parquet", manifest_bytes(rows))
    lines = b"".join(json.dumps(a, ensure_ascii=False, sort_keys=True).encode() + b"\n" for a in sorted(audit, key=lambda a: a["key"]))
    ledger.store.write_bytes(f"{GROUPS_DIRNAME}/{name}.audit.jsonl", lines)
    summary = {
        "group": group,
        "sources": len(members) + len(duplicates),
        "sources_failed": int(failed),
        "clips_kept": len(kept),
        "clip_candidates": candidates,
        "not_kept": dict(Counter(f"{r['status']}: {r['reason']}" for r in rows if r["status"] != "ok")),
        "hours_in": hours_in,
        "seconds_out": seconds_out,
        "shards": list(writer.shards_written),
    }
    ledger.store.write_json(f"{GROUPS_DIRNAME}/{name}.json", summary)  # the commit point
    return summary
