"""ShardWriter: WebDataset tar shards with atomic finalisation and a Parquet manifest beside them.

Layout written under `out_dir`:

    shards/shard-000000.tar       <key>.json, <key>.mp4, <key>.wav (members sorted per sample)
    shards/shard-000000.parquet   manifest rows of the samples in that shard
    manifest.parquet              every row: kept samples plus rejected / failed candidates

A shard is written under a hidden `.shard-….tar.<pid>.partial` name and renamed only once it is
complete, so a killed writer never leaves a partial shard under a final name. Tar headers carry
fixed metadata (mtime 0, no owner names), so the same samples give byte-identical shards.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from dataset.annotation import AnnotationRules, dump_annotation, validate_annotation
from dataset.atomic import fsync_dir, partial_path
from dataset.errors import UserError
from dataset.manifest import check_row, row_from_annotation, write_manifest
from dataset.schema import GROUP_SHARD_PATTERN, MANIFEST_FILENAME, PARTIAL_SUFFIX, REQUIRED_MEMBERS, SHARD_RE, SHARDS_DIRNAME, is_safe_key, shard_name

log = logging.getLogger(__name__)

_TAR_BLOCK = 512


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ShardWriterConfig:
    """Shard size limits.

    Args:
        max_samples: samples per shard before a new shard starts.
        max_bytes: bytes per shard before a new shard starts (a single larger sample still
            gets a shard of its own).
        validate: check each annotation against the schema before writing it.
    """

    max_samples: int = 1000
    max_bytes: int = 1 << 30
    validate: bool = True

    def __post_init__(self) -> None:
        if self.max_samples < 1:
            raise UserError(f"max_samples must be >= 1, got {self.max_samples}")
        if self.max_bytes < 4 * _TAR_BLOCK:
            raise UserError(f"max_bytes must be >= {4 * _TAR_BLOCK}, got {self.max_bytes}")


def group_shard_prefix(group: int) -> str:
    """Every shard file of group `group` starts with this (`shard-000012-`)."""
    return (GROUP_SHARD_PATTERN % (group, 0)).rsplit("-", 1)[0] + "-"


def _member_bytes(size: int) -> int:
    """Bytes a member takes in a tar: one header block plus data padded to whole blocks."""
    return _TAR_BLOCK + -(-size // _TAR_BLOCK) * _TAR_BLOCK


def _encode_members(sample: Mapping[str, Any]) -> dict[str, bytes]:
    members = {}
    for ext, value in sample.items():
        if ext.startswith("__"):
            continue
        if ext == "json" and isinstance(value, Mapping):
            value = dump_annotation(dict(value))
        if not isinstance(value, (bytes, bytearray)):
            raise ValueError(f"member .{ext} must be bytes (or a dict for .json), got {type(value).__name__}")
        members[ext] = bytes(value)
    return members


class ShardWriter:
    """Write samples into size-limited shards plus the manifest.

    Args:
        out_dir: corpus folder; shards go to `out_dir/shards/`.
        cfg: size limits.
        rules: annotation rules used when `cfg.validate` is on.
        required_members: extensions every sample must carry (media shards: json, mp4, wav).
        start_index: number of the first shard.
        overwrite: remove shards and manifest already in `out_dir` instead of refusing.
        group: write shard group `group` only: shards `shard-GGGGGG-PPP.tar`, and only that group's
            earlier files are checked / removed (other groups' writers may work in the same folder
            at the same time); no `manifest.parquet` (the caller merges the groups' rows).
    """

    def __init__(
        self,
        out_dir: str | Path,
        cfg: ShardWriterConfig = ShardWriterConfig(),
        *,
        rules: AnnotationRules = AnnotationRules(),
        required_members: tuple[str, ...] = tuple(REQUIRED_MEMBERS),
        start_index: int = 0,
        overwrite: bool = False,
        group: int | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.shard_dir = self.out_dir / SHARDS_DIRNAME
        self.cfg, self.rules, self.required_members = cfg, rules, required_members
        self.group = group
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        prefix = "shard-" if group is None else group_shard_prefix(group)
        for stale in sorted(self.shard_dir.glob(f".{prefix}*{PARTIAL_SUFFIX}")):
            stale.unlink(missing_ok=True)
            log.warning("removed %s left by an interrupted writer", stale)
        existing = sorted(p for p in self.shard_dir.iterdir()
                          if p.name.startswith(prefix) and (SHARD_RE.match(p.name) or p.suffix == ".parquet"))
        if existing and not overwrite:
            raise FileExistsError(
                f"{self.shard_dir} already holds {len(existing)} shard file(s); pass overwrite=True "
                "(--overwrite) or write to a new folder"
            )
        for path in existing:
            path.unlink()
        if group is None:
            (self.out_dir / MANIFEST_FILENAME).unlink(missing_ok=True)
        self.index = start_index
        self.shards_written: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self._keys: set[str] = set()
        self._shard_rows: list[dict[str, Any]] = []
        self._file: BinaryIO | None = None
        self._tar: webdataset.TarWriter | None = None
        self._bytes = 0
        self._closed = False

    # -- public API ---------------------------------------------------------------------------

    def write(self, sample: Mapping[str, Any], row: Mapping[str, Any] | None = None) -> str:
        """Add one sample (`{"__key__": k, "json": dict, "mp4": bytes, "wav": bytes}`).

        The manifest row is derived from the annotation; `row` adds or overrides columns.
        Returns the name of the shard the sample went to.
        """
        if self._closed:
            raise ValueError("ShardWriter is closed")
        key = sample.get("__key__")
        if not isinstance(key, str) or not is_safe_key(key):
            raise ValueError(f"sample key {key!r} is not a safe shard key (letters, digits, '_' and '-', at most 90)")
        if key in self._keys:
            raise ValueError(f"sample {key}: key written twice")
        missing = [ext for ext in self.required_members if ext not in sample]
        if missing:
            raise ValueError(f"sample {key}: missing member(s) {', '.join('.' + m for m in missing)}")
        annotation = sample.get("json")
        if self.cfg.validate and isinstance(annotation, Mapping):
            problems = validate_annotation(annotation, self.rules)
            if annotation.get("key") != key:
                problems.insert(0, f"$.key: {annotation.get('key')!r} differs from the sample key")
            if problems:
                raise ValueError(f"sample {key}: invalid annotation: " + "; ".join(map(str, problems)))
        members = _encode_members(sample)
        size = sum(_member_bytes(len(v)) for v in members.values())
        if self._tar is not None and (
            len(self._shard_rows) >= self.cfg.max_samples or self._bytes + size > self.cfg.max_bytes
        ):
            self._finish_shard()
        if self._tar is None:
            self._open_shard()
        if size > self.cfg.max_bytes:
            log.warning("sample %s (%d bytes) exceeds max_bytes=%d; it gets a shard of its own", key, size, self.cfg.max_bytes)
        assert self._tar is not None
        self._tar.write({"__key__": key, **members})
        self._bytes += size
        self._keys.add(key)
        name = self._name()
        manifest_row = row_from_annotation(annotation, shard=name) if isinstance(annotation, Mapping) else {"key": key, "status": "ok", "stage": "pack", "shard": name}
        manifest_row.update(row or {})
        manifest_row["shard"] = name
        check_row(manifest_row)
        self._shard_rows.append(manifest_row)
        return name

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Record a candidate that has no sample in the shards (rejected or failed)."""
        row = dict(row)
        check_row(row)
        if row["status"] == "ok":
            raise ValueError(f"manifest row {row['key']!r}: an 'ok' row must come with its sample (use write)")
        self.rows.append(row)

    def close(self) -> None:
        """Finalise the open shard and write `manifest.parquet` (all rows; not for a group writer)."""
        if self._closed:
            return
        self._finish_shard()
        if self.group is None:
            write_manifest(self.rows, self.out_dir / MANIFEST_FILENAME)
        self._closed = True

    def abort(self) -> None:
        """Drop the open shard (its partial file) without finalising anything."""
        if self._tar is not None:
            self._tar.close()
            assert self._file is not None
            self._file.close()
            partial_path(self.shard_dir / self._name()).unlink(missing_ok=True)
            self._tar = self._file = None
        self._closed = True

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- shard lifecycle ----------------------------------------------------------------------

    def _name(self) -> str:
        return shard_name(self.index) if self.group is None else GROUP_SHARD_PATTERN % (self.group, self.index)

    def _open_shard(self) -> None:
        final = self.shard_dir / self._name()
        if final.exists():
            raise FileExistsError(f"{final} already exists")
        self._file = open(partial_path(final), "wb")
        # Imported here: webdataset pulls in torch (~6 s), which the pipeline's media actors never need.
        import webdataset

        self._tar = webdataset.TarWriter(self._file, user="", group="", mode=0o644, mtime=0)
        self._bytes = 0
        self._shard_rows = []

    def _finish_shard(self) -> None:
        if self._tar is None:
            return
        assert self._file is not None
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.shard_dir / self._name()
        # The shard's own manifest first, then the tar: the tar's final name is the commit point.
        write_manifest(self._shard_rows, final.with_suffix(".parquet"))
        os.replace(partial_path(final), final)
        fsync_dir(self.shard_dir)
        self.shards_written.append(final.name)
        self.rows.extend(self._shard_rows)
        self._tar = self._file = None
        self._shard_rows = []
        self.index += 1
