"""Durable progress: one JSON record per (source, stage) or (clip, stage), written atomically.

    OUT/_work/<source_id>/<stage>.json          a source stage's result (probe, analyse, plan, cut)
    OUT/_work/<source_id>/dropped.json          the source stopped at a stage (failed / rejected)
    OUT/_work/<source_id>/clips/<key>.*         clip media and annotations (cut and sync stages)
    OUT/_work/<source_id>/<stage>/<key>.json    a clip stage's result for one clip (sync, asr, caption)
    OUT/_work/groups/<GGGGGG>.json              a committed shard group (written last: the commit)
    OUT/_work/groups/<GGGGGG>.parquet           its manifest rows; .audit.jsonl its caption audit

OUT is a local folder or any fsspec URL (`dataset.storage.Store`). A stage whose record exists is
not run again, so after `kill -9` the same command resumes where it stopped. Records are plain
data: a stage's output depends only on the source bytes and the config, which is why the config
hash is checked before reusing a work folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from dataset.storage import Store

WORK_DIRNAME = "_work"
GROUPS_DIRNAME = "groups"
SOURCE_STAGES = ("probe", "analyse", "plan", "cut")
CLIP_STAGES = ("sync", "asr", "caption")  # run per clip, batched across sources
STAGES = SOURCE_STAGES + CLIP_STAGES
DROPPED = "dropped.json"  # a source that failed or was rejected by a source stage


class Ledger:
    """Args:
    out_dir: the run's output folder or URL.
    """

    def __init__(self, out_dir: str | Path | Store) -> None:
        self.out = out_dir if isinstance(out_dir, Store) else Store(out_dir)
        self.store = self.out.sub(WORK_DIRNAME)

    def exists(self) -> bool:
        return self.store.is_dir()

    # -- source stages ------------------------------------------------------------------------

    def get(self, source_id: str, stage: str) -> dict[str, Any] | None:
        try:
            return self.store.read_json(f"{source_id}/{stage}.json")
        except FileNotFoundError:
            return None

    def put(self, source_id: str, stage: str, record: dict[str, Any]) -> None:
        self.store.write_json(f"{source_id}/{stage}.json", record)

    # -- clip stages --------------------------------------------------------------------------

    def get_clip(self, source_id: str, stage: str, key: str) -> dict[str, Any] | None:
        try:
            return self.store.read_json(f"{source_id}/{stage}/{key}.json")
        except FileNotFoundError:
            return None

    def put_clip(self, source_id: str, stage: str, key: str, record: dict[str, Any]) -> None:
        self.store.write_json(f"{source_id}/{stage}/{key}.json", record)

    def clip_file(self, source_id: str, name: str) -> str:
        """Path inside the ledger of a clip's media or annotation file (`KEY.mp4`, …)."""
        return f"{source_id}/clips/{name}"

    # -- shard groups -------------------------------------------------------------------------

    def group_record(self, group: int) -> dict[str, Any] | None:
        try:
            return self.store.read_json(f"{GROUPS_DIRNAME}/{group:06d}.json")
        except FileNotFoundError:
            return None

    # -- whole-run views ----------------------------------------------------------------------

    def scan(self) -> list[str]:
        """Every record path under the ledger, relative to it (one listing; a bucket lists in pages)."""
        if not self.store.remote:
            root = Path(self.store.root)
            if not root.is_dir():
                return []
            return [str(p.relative_to(root)) for p in root.rglob("*.json")]
        base = self.store._path("")
        self.store.fs.invalidate_cache(base)
        try:
            found = self.store.fs.find(base)
        except FileNotFoundError:
            return []
        finally:
            self.store.fs.invalidate_cache()  # find() cached every folder's listing: soon stale
        return [p[len(base):].lstrip("/") for p in found if p.endswith(".json")]

    def drop(self, source_id: str, stage: str) -> None:
        """Mark a source that stopped at `stage` (failed or rejected), so progress counts it as
        through the later source stages without reading every record."""
        self.store.write_json(f"{source_id}/{DROPPED}", {"stage": stage})

    def counts(self, paths: list[str] | None = None) -> dict[str, int]:
        """Sources through each source stage (done, or dropped before it); clips through each clip stage."""
        counts: Counter[str] = Counter()
        per_source: dict[str, set[str]] = {}
        for path in self.scan() if paths is None else paths:
            parts = path.split("/")
            if parts[0] == GROUPS_DIRNAME:
                continue
            if len(parts) == 2:
                per_source.setdefault(parts[0], set()).add(parts[1].removesuffix(".json"))
            elif len(parts) == 3 and parts[1] in CLIP_STAGES:
                counts[parts[1]] += 1
        for stages in per_source.values():
            dropped = DROPPED.removesuffix(".json") in stages
            for stage in SOURCE_STAGES:
                counts[stage] += stage in stages or dropped
        return {stage: counts[stage] for stage in STAGES}

    @staticmethod
    def clips_and_groups(paths: list[str]) -> tuple[int, int]:
        """Clips cut (one `clips/KEY.json` each) and shard groups committed (`groups/NNNNNN.json`)."""
        clips = groups = 0
        for path in paths:
            parts = path.split("/")
            if parts[0] == GROUPS_DIRNAME:
                groups += path.count(".") == 1
            elif len(parts) == 3 and parts[1] == "clips" and parts[2].count(".") == 1:
                clips += 1
        return clips, groups

    def check_config(self, config_hash: str) -> None:
        """Refuse to mix results of two different configs in one work folder."""
        try:
            previous = self.store.read_bytes("config_hash").decode().strip()
        except FileNotFoundError:
            previous = None
        if previous is not None and previous != config_hash:
            raise ValueError(
                f"{self.out.root} was started with a different config (hash {previous}, now {config_hash}); "
                f"use a new --output folder or delete {self.store.root}"
            )
        self.store.write_bytes("config_hash", config_hash.encode())
