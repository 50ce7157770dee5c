"""Durable per-stage progress: one JSON record per (source, stage), written atomically.

    OUT/_work/<source_id>/<stage>.json     the stage's result for that source
    OUT/_work/<source_id>/clips/<key>.*    clip media and annotations (cut stage)
    OUT/_work/<source_id>/asr.json         per-clip speech ratio, verdict and transcript

A stage whose record exists is not run again, so after `kill -9` the same command resumes
where it stopped. Records are plain data: a stage's output depends only on the source bytes
and the config, which is why the config hash is checked before reusing a work folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dataset.atomic import atomic_write_bytes

WORK_DIRNAME = "_work"
STAGES = ("probe", "analyse", "plan", "cut", "sync", "asr", "caption")


class Ledger:
    """Args:
    out_dir: the run's output folder.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir) / WORK_DIRNAME

    def source_dir(self, source_id: str) -> Path:
        return self.root / source_id

    def clip_dir(self, source_id: str) -> Path:
        return self.source_dir(source_id) / "clips"

    def get(self, source_id: str, stage: str) -> dict[str, Any] | None:
        path = self.source_dir(source_id) / f"{stage}.json"
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def put(self, source_id: str, stage: str, record: dict[str, Any]) -> None:
        data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        atomic_write_bytes(self.source_dir(source_id) / f"{stage}.json", data)

    def counts(self) -> dict[str, int]:
        """Sources that completed each stage."""
        counts = dict.fromkeys(STAGES, 0)
        if self.root.is_dir():
            for source in self.root.iterdir():
                for stage in STAGES:
                    counts[stage] += (source / f"{stage}.json").is_file()
        return counts

    def check_config(self, config_hash: str) -> None:
        """Refuse to mix results of two different configs in one work folder."""
        marker = self.root / "config_hash"
        if marker.is_file() and marker.read_text().strip() != config_hash:
            raise ValueError(
                f"{self.root.parent} was started with a different config (hash {marker.read_text().strip()}, "
                f"now {config_hash}); use a new --output folder or delete {self.root}"
            )
        atomic_write_bytes(marker, config_hash.encode())
