"""Training logs on rank 0: JSON lines, TensorBoard scalars and a progress bar.

    OUT/metrics.jsonl     {"step": 10, "loss": 0.41, "lr": 1e-4, "samples_per_s": ..., ...} per log step
    OUT/tensorboard/      the same scalars (`tensorboard --logdir OUT/tensorboard`)
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dataset.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class LogConfig:
    """Args:
    every: log (and report to Ray Train) every N steps; every rank reports at the same steps.
    tensorboard: also write TensorBoard event files.
    progress: show a progress bar (tqdm) on rank 0.
    """

    every: int = 1
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.every < 1:
            raise UserError(f"log.every must be >= 1, got {self.every}")


def memory_gb(device: torch.device) -> float:
    """Peak CUDA memory allocated, or this process's peak RSS on CPU, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class MetricLogger:
    """Writes metrics on the main rank only; other ranks get a no-op logger.

    Args:
        out_dir: run folder.
        config: what to write.
        total_steps: for the progress bar.
        start_step: first step of this run (resume).
        enabled: False on ranks other than 0.
    """

    def __init__(self, out_dir: str | Path, config: LogConfig, *, total_steps: int, start_step: int, enabled: bool) -> None:
        self.config, self.enabled = config, enabled
        self._jsonl = self._tb = self._bar = None
        if not enabled:
            return
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self._jsonl = (out / "metrics.jsonl").open("a")
        if config.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(out / "tensorboard"))
        if config.progress:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", file=sys.stderr, dynamic_ncols=True)
        self._last = time.perf_counter()

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        row = {"step": step, "time": time.time(), **metrics}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        if self._tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, step)
        if self._bar is not None:
            self._bar.set_postfix(
                loss=f"{metrics.get('loss', float('nan')):.4f}",
                samples_s=f"{metrics.get('samples_per_s', 0):.1f}",
                tokens_s=f"{metrics.get('tokens_per_s', 0):.0f}",
                mem_gb=f"{metrics.get('memory_gb', 0):.2f}",
                refresh=False,
            )

    def advance(self, steps: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(steps)

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
        if self._tb is not None:
            self._tb.close()
        if self._bar is not None:
            self._bar.close()
