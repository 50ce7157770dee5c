"""Sharded, atomic training checkpoints (torch.distributed.checkpoint) and safetensors export.

    OUT/checkpoints/step-000100/   DCP shards of model, optimiser, EMA, LR schedule, RNG, data position
    OUT/checkpoints/latest         name of the newest complete checkpoint (written last, atomically)
    OUT/final/, OUT/ema/           `train.pretrained.save_dit` folders (load with `load_dit`) + conditioning.json

A checkpoint is written into `step-N.partial/` and renamed by rank 0 after every rank finished,
so a crash never leaves a half checkpoint that resume would pick.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch import nn

from dataset.errors import UserError
from train.parallelize import barrier

LATEST = "latest"
PARTIAL = ".partial"


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointConfig:
    """Args:
    every: save every N steps (0 = only at the end).
    keep: newest checkpoints kept (older ones are deleted).
    resume: continue from OUT/checkpoints/latest when it exists.
    export_final: write OUT/final (and OUT/ema with EMA on) as safetensors at the end.
    snapshot_every: also export the sampling weights (EMA when on, else the model) every N steps to
        OUT/snapshots/step-NNNNNN (0 = never): learning curves sample them after training.
    """

    every: int = 0
    keep: int = 2
    resume: bool = True
    export_final: bool = True
    snapshot_every: int = 0

    def __post_init__(self) -> None:
        if self.every < 0:
            raise UserError(f"checkpoint.every must be >= 0, got {self.every}")
        if self.snapshot_every < 0:
            raise UserError(f"checkpoint.snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.keep < 1:
            raise UserError(f"checkpoint.keep must be >= 1, got {self.keep}")


def check_shared_output(out: Path, rank: int, world_size: int) -> None:
    """Fail at start, on every rank, unless all ranks see the same `output_dir`.

    Checkpoints are DCP folders every rank writes its shard into, renamed by rank 0 when all are
    done, and resume reads them back on every rank: `output_dir` must be one filesystem every node
    mounts (NFS, Lustre, a bucket mounted with gcsfuse / mountpoint-s3). Rank 0 writes a probe file
    named by a token it broadcasts; each rank reports whether it sees it.
    """
    import socket
    import uuid

    import torch.distributed as dist

    if world_size == 1 or not dist.is_initialized():
        return
    token = [uuid.uuid4().hex if rank == 0 else None]
    dist.broadcast_object_list(token, src=0)
    probe = out / f".shared-check-{token[0]}"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text(socket.gethostname())
    barrier()
    seen: list[Any] = [None] * world_size
    dist.all_gather_object(seen, (probe.is_file(), socket.gethostname()))
    barrier()
    if rank == 0:
        probe.unlink(missing_ok=True)
    blind = [f"rank {r} on {host}" for r, (ok, host) in enumerate(seen) if not ok]
    if blind:
        raise UserError(f"output_dir {out} is not shared between the ranks: {', '.join(blind)} cannot see the file rank 0 "
                        f"wrote there ({seen[0][1]}). Checkpoints and resume need output_dir on a filesystem every node "
                        "mounts (NFS, Lustre, gcsfuse / mountpoint-s3); an object-storage URL is not supported for output_dir")


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


class Checkpointer:
    """Save / find / load DCP checkpoints under `root`.

    Args:
        root: checkpoint folder (OUT/checkpoints).
        config: saving policy.
        is_main: this rank renames and prunes.
    """

    def __init__(self, root: str | os.PathLike, config: CheckpointConfig, *, is_main: bool) -> None:
        self.root, self.config, self.is_main = Path(root), config, is_main

    def latest(self) -> Path | None:
        marker = self.root / LATEST
        if not marker.is_file():
            return None
        path = self.root / marker.read_text().strip()
        return path if path.is_dir() else None

    def save(self, state: dict[str, Any], step: int) -> Path:
        final = self.root / step_dir_name(step)
        partial = final.with_name(final.name + PARTIAL)
        if self.is_main:
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
        barrier()
        dcp.save(state, checkpoint_id=str(partial))
        barrier()
        if self.is_main:
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)
            tmp = self.root / f".{LATEST}.tmp"
            tmp.write_text(final.name + "\n")
            tmp.replace(self.root / LATEST)
            self._prune()
        barrier()
        return final

    def load(self, state: dict[str, Any], path: Path) -> None:
        """Fill `state` (a template with the right keys and shapes) in place from `path`."""
        dcp.load(state, checkpoint_id=str(path))

    def _prune(self) -> None:
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir() and not p.name.endswith(PARTIAL))
        for old in done[: -self.config.keep]:
            shutil.rmtree(old, ignore_errors=True)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded CPU state dict (a collective under FSDP: every rank calls it)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().cpu()


def export_dit(
    config: Any, state: dict[str, torch.Tensor], directory: str | os.PathLike, *, is_main: bool, contract: Any = None
) -> Path | None:
    """Rank 0 writes a `save_dit` folder holding `state` (a full state dict) with the model `config`,
    and the run's `ConditioningContract` as conditioning.json when given."""
    from model.registry import build_model
    from train.contract import write_contract
    from train.pretrained import save_dit

    if is_main:
        # meta + to_empty: the weights come from `state`; init_weights only fills the
        # non-persistent buffers (alignment schedule) a state dict does not carry
        model = build_model(config, device="meta").to_empty(device="cpu")
        model.init_weights()
        model.load_state_dict(state)
        save_dit(model, directory)
        if contract is not None:
            write_contract(directory, contract)
    barrier()
    return Path(directory) if is_main else None


def ema_full_state(model_state: dict[str, torch.Tensor], shadow: dict[str, torch.Tensor], *, is_main: bool) -> dict[str, torch.Tensor]:
    """The model's full state with EMA values for the parameters the EMA tracks.

    A collective under FSDP (every rank gathers the shards); only rank 0 gets the dict.
    """
    gathered = {name: full_tensor(value) for name, value in shadow.items()}
    if not is_main:
        return {}
    out = dict(model_state)
    for name, value in gathered.items():
        out[name] = value.to(model_state[name].dtype)
    return out
