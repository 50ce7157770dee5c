"""Ray Train launch: `TorchTrainer` over N workers, each running `build_trainer(cfg).train()`.

The only module that imports `ray.train`. Ray Train makes the process group (gloo on CPU, NCCL
on GPU) and hands each worker its device; every rank reports the same metrics at the same steps
(`log.every`), as Ray requires. Checkpoints stay the trainer's own (DCP under OUT/checkpoints).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dataset.config_loader import load_config
from train.config import TrainConfig


def _train_loop(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch

    from train.trainer import build_trainer

    os.chdir(loop_config["cwd"])  # relative paths in the config mean the launcher's folder
    cfg = load_config(TrainConfig, loop_config["config"], loop_config["overrides"])
    trainer = build_trainer(cfg, device=ray.train.torch.get_device(), reporter=ray.train.report)
    trainer.train()


def launch(
    config_path: str | None, overrides: Sequence[str], *, num_workers: int, use_gpu: bool, ray_address: str | None = None
) -> dict[str, Any]:
    """Validate the config here (fail before any worker starts), then run it on `num_workers` workers.

    Returns the last row rank 0 wrote to OUT/metrics.jsonl (Ray Train V2 keeps metrics only with
    reported checkpoints, and the trainer checkpoints on its own).
    """
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if num_workers < 1:
        raise ValueError(f"--num-workers must be >= 1 for a Ray Train run, got {num_workers}")
    cfg = load_config(TrainConfig, config_path, overrides)
    if not ray.is_initialized():
        ray.init(address=ray_address, log_to_driver=True)
    out = Path(cfg.output_dir).resolve()
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"cwd": os.getcwd(), "config": config_path, "overrides": list(overrides)},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=out.name, storage_path=str(out.parent / f"{out.name}.ray")),
    )
    trainer.fit()
    log_file = out / "metrics.jsonl"
    rows = log_file.read_text().splitlines() if log_file.is_file() else []
    return json.loads(rows[-1]) if rows else {}
