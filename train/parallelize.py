"""Distributed set-up and model parallelisation: FSDP2 per `fsdp_units()`, activation checkpointing, bf16.

FSDP2 (`fully_shard`, torch >= 2.6) wraps each unit the model names (its DiT blocks), then the root.
On GPU parameters compute in bf16 and gradients reduce in fp32; on CPU (gloo) everything is fp32.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import nn

from dataset.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class ParallelConfig:
    """Args:
    fsdp: "auto" (FSDP2 when more than one rank runs), "fsdp2" (always; needs a process group) or
        "ddp" (never shard: DDP across ranks). Not on/off: YAML reads those as booleans.
    activation_checkpointing: recompute each DiT block in the backward pass.
    mixed_precision: "bf16" (GPU only; ignored on CPU) or "fp32".
    reshard_after_forward: free gathered parameters after forward (ZeRO-3) instead of keeping them (ZeRO-2).
    compile: torch.compile each block.
    fp32_modules: under FSDP2 bf16, shard the model's fp32 modules (time embedding and projection,
        adaLN tables, norms; `VideoDiT.fp32_modules`) as fp32 units, as Wan keeps them; false = every
        parameter computes in bf16 (fewer, larger all-gathers).
    """

    fsdp: Literal["auto", "fsdp2", "ddp"] = "auto"
    activation_checkpointing: bool = False
    mixed_precision: Literal["bf16", "fp32"] = "bf16"
    reshard_after_forward: bool = True
    compile: bool = False
    fp32_modules: bool = True

    def __post_init__(self) -> None:
        if self.fsdp not in ("auto", "fsdp2", "ddp"):
            raise UserError(f"parallel.fsdp must be 'auto', 'fsdp2' or 'ddp', got {self.fsdp!r}")
        if self.mixed_precision not in ("bf16", "fp32"):
            raise UserError(f"parallel.mixed_precision must be 'bf16' or 'fp32', got {self.mixed_precision!r}")


@dataclass(frozen=True, slots=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun (or use the one Ray Train made)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized() and world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo(0, 1, 0)


def default_device(use_gpu: bool, local_rank: int) -> torch.device:
    if use_gpu and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def use_fsdp(config: ParallelConfig, world_size: int) -> bool:
    if config.fsdp == "fsdp2":
        return True
    return config.fsdp == "auto" and world_size > 1


def apply_activation_checkpointing(model: nn.Module, units: list[str]) -> None:
    """Wrap each unit in a non-reentrant checkpoint wrapper (state-dict keys unchanged)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    for name in units:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        parent.register_module(child, checkpoint_wrapper(model.get_submodule(name)))


def apply_fsdp(model: nn.Module, units: list[str], device: torch.device, config: ParallelConfig) -> nn.Module:
    """`fully_shard` every unit, then the root, over a 1-D mesh of all ranks."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    bf16 = config.mixed_precision == "bf16" and device.type == "cuda"
    return shard_model(model, units, mesh, bf16=bf16, keep_fp32=config.fp32_modules,
                       reshard_after_forward=config.reshard_after_forward)


def shard_model(model: nn.Module, units: list[str], mesh, *, bf16: bool, keep_fp32: bool = True,
                reshard_after_forward: bool = True) -> nn.Module:
    """FSDP2 over `mesh`: each unit, then the root. With bf16, the model's fp32 modules
    (`fp32_modules()`: time embedding, adaLN tables, norms) become their own units with an fp32
    policy first, grouped per enclosing unit (one extra all-gather per block), so they are gathered
    and computed in fp32 as Wan keeps them; everything else computes in bf16."""
    from torch.distributed.fsdp import fully_shard

    kept = list(model.fp32_modules()) if bf16 and keep_fp32 and hasattr(model, "fp32_modules") else []
    for owner in [*units, ""]:  # "" = the root: what no unit encloses
        inside = [n for n in kept if n.startswith(owner + ".")] if owner else kept
        if inside:
            fully_shard([model.get_submodule(n) for n in inside], mesh=mesh, mp_policy=fsdp_policy(False),
                        reshard_after_forward=reshard_after_forward)
            kept = [n for n in kept if n not in inside]
        target = model.get_submodule(owner) if owner else model
        fully_shard(target, mesh=mesh, mp_policy=fsdp_policy(bf16), reshard_after_forward=reshard_after_forward)
    return model


def load_full_state(model: nn.Module, full_state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Materialise a meta-device sharded model, then scatter rank 0's full weights into it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    model.to_empty(device=device)
    with torch.no_grad():
        model.init_weights()  # fills non-persistent buffers (e.g. the alignment schedule); weights come next
    set_model_state_dict(model, full_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))


def parallelize(
    model: nn.Module, config: ParallelConfig, device: torch.device, world_size: int, full_state: dict[str, torch.Tensor] | None = None
) -> nn.Module:
    """AC, compile, then FSDP2 (or DDP / nothing): the torchtitan order.

    Under FSDP2 `model` is built on the meta device and `full_state` (rank 0's full state dict;
    empty on the other ranks) is broadcast into the shards, so no rank ever holds the whole model
    besides rank 0's copy on CPU.
    """
    units = model.fsdp_units()
    if config.activation_checkpointing:
        apply_activation_checkpointing(model, units)
    if config.compile:
        for name in units:
            model.get_submodule(name).compile()
    if use_fsdp(config, world_size):
        if not dist.is_initialized():
            raise ValueError("parallel.fsdp='fsdp2' needs a process group (launch with torchrun or --num-workers)")
        model = apply_fsdp(model, units, device, config)
        load_full_state(model, full_state or {}, device)
        return model
    model = model.to(device)
    if world_size > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def fsdp_policy(bf16: bool):
    """FSDP2 mixed precision: bf16 parameters, fp32 gradient reduction, and no input casting. FSDP's
    `cast_forward_inputs` would round the timestep (997.3 -> 996) and the fp32 RoPE angles to bf16;
    `VideoDiT.forward` casts its tensor inputs to the weights' dtype itself and keeps those in fp32."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if not bf16:
        return MixedPrecisionPolicy(cast_forward_inputs=False)
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=False)


def autocast(device: torch.device, config: ParallelConfig, sharded: bool):
    """bf16 autocast for unsharded GPU runs (FSDP2 casts through its policy instead)."""
    enabled = device.type == "cuda" and config.mixed_precision == "bf16" and not sharded
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
