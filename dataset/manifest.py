"""The Parquet manifest: one row per clip candidate, kept even when rejected (DESIGN.md §3)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataset.atomic import atomic_write_bytes
from dataset.schema import MANIFEST_COLUMNS, MANIFEST_SCHEMA, STATUSES
from dataset.storage import Store, is_remote


def check_row(row: Mapping[str, Any]) -> None:
    """Raise ValueError naming the row's key and the problem (unknown column, bad status)."""
    unknown = set(row) - set(MANIFEST_COLUMNS)
    key = row.get("key")
    if unknown:
        raise ValueError(f"manifest row {key!r}: unknown column(s) {sorted(unknown)}")
    if not key:
        raise ValueError(f"manifest row has no key: {dict(row)}")
    if row.get("status") not in STATUSES:
        raise ValueError(f"manifest row {key!r}: status must be one of {STATUSES}, got {row.get('status')!r}")
    if not row.get("stage"):
        raise ValueError(f"manifest row {key!r}: 'stage' (last stage reached) is required")
    if row["status"] != "ok" and not row.get("reason"):
        raise ValueError(f"manifest row {key!r}: a {row['status']} row needs a reason")


def rows_to_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    for row in rows:
        check_row(row)
    full = [{col: row.get(col) for col in MANIFEST_COLUMNS} for row in rows]
    return pa.Table.from_pylist(full, schema=MANIFEST_SCHEMA)


def manifest_bytes(rows: Iterable[Mapping[str, Any]] | pa.Table) -> bytes:
    """Rows as a Parquet file's bytes, sorted by key (a deterministic file)."""
    table = rows if isinstance(rows, pa.Table) else rows_to_table(rows)
    table = table.sort_by("key") if table.num_rows else table
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


def write_manifest(rows: Iterable[Mapping[str, Any]] | pa.Table, path: str | Path) -> None:
    """Write rows (sorted by key, for a deterministic file) atomically to `path`."""
    atomic_write_bytes(path, manifest_bytes(rows))


def read_manifest(path: str | Path) -> pa.Table:
    """A manifest file, or a folder of Parquet parts (read together); local or an fsspec URL."""
    if is_remote(path):
        return _read_remote(str(path).rstrip("/"))
    path = Path(path)
    if path.is_dir():
        parts = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
        if not parts:
            raise FileNotFoundError(f"{path}: no Parquet parts in this folder")
        tables = [_read_one(p) for p in parts]
        return pa.concat_tables(tables)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    return _read_one(path)


def _read_remote(url: str) -> pa.Table:
    """`read_manifest` on object storage: each file fetched whole (one GET), parsed in memory."""
    store = Store(url)
    if store.is_dir():
        parts = [n for n in store.listdir() if n.endswith(".parquet") and not n.startswith(".")]
        if not parts:
            raise FileNotFoundError(f"{url}: no Parquet parts in this folder")
        return pa.concat_tables([_read_one(store.url(n), store.read_bytes(n)) for n in parts])
    folder, _, name = url.rpartition("/")
    parent = Store(folder)
    if not parent.exists(name):
        raise FileNotFoundError(f"manifest not found: {url}")
    return _read_one(url, parent.read_bytes(name))


def _read_one(path: Path | str, data: bytes | None = None) -> pa.Table:
    try:
        table = pq.read_table(pa.BufferReader(data) if data is not None else path)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{path}: not a readable Parquet file: {err}") from None
    missing = [c for c in ("key", "status", "stage") if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: manifest lacks required column(s) {missing}")
    # Older/other writers may lack optional columns: add them as nulls, keep our column order.
    for field in MANIFEST_SCHEMA:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(table.num_rows, field.type))
    return table.select(list(MANIFEST_COLUMNS)).cast(MANIFEST_SCHEMA)


def row_from_annotation(doc: Mapping[str, Any], *, shard: str | None, stage: str = "pack") -> dict[str, Any]:
    """The manifest row of a kept clip, with its quality figures read from the annotation."""
    video, audio, source = doc["video"], doc["audio"], doc["source"]
    face, transcript, caption = doc.get("face"), doc.get("transcript"), doc.get("caption")
    bbox = face.get("bbox") if face else None
    return {
        "key": doc["key"],
        "source_uri": source["uri"],
        "source_sha256": source["sha256"],
        "start_s": source["start_s"],
        "end_s": source["end_s"],
        "status": "ok",
        "stage": stage,
        "shard": shard,
        "duration_s": video["duration_s"],
        "num_frames": video["num_frames"],
        "width": video["width"],
        "height": video["height"],
        "fps": video["fps"],
        "speech_ratio": audio.get("speech_ratio"),
        "av_offset_frames": (audio.get("av_sync") or {}).get("offset_frames"),
        "av_sync_confidence": (audio.get("av_sync") or {}).get("confidence"),
        "face_detected_ratio": face["detected_ratio"] if face else None,
        "face_max_faces": face["max_faces"] if face else None,
        "face_area": (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) if bbox else None,
        "language": transcript["language"] if transcript else None,
        "num_words": len(transcript["words"]) if transcript else None,
        "num_phases": len(caption["phases"]) if caption else None,
        "motion_face": (doc.get("motion") or {}).get("face_intensity"),
        "motion_body": (doc.get("motion") or {}).get("body_intensity"),
    }
