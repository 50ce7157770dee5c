"""Optimiser over named parameter groups, and the learning-rate schedule (warmup, then constant or cosine)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from dataset.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class OptimConfig:
    """Args:
    lr: base learning rate (a stage may give groups their own).
    betas / eps / weight_decay: AdamW.
    grad_clip: max global gradient norm (0 = off).
    warmup_steps: linear warmup from 0.
    schedule: after warmup, "constant" or "cosine" down to `min_lr_ratio * lr` at the last step.
    min_lr_ratio: floor of the cosine schedule.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise UserError(f"optim.lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas) or len(self.betas) != 2:
            raise UserError(f"optim.betas must be two values in [0, 1), got {self.betas}")
        for key in ("eps", "weight_decay", "grad_clip", "min_lr_ratio"):
            if getattr(self, key) < 0:
                raise UserError(f"optim.{key} must be >= 0, got {getattr(self, key)}")
        if self.warmup_steps < 0:
            raise UserError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in ("constant", "cosine"):
            raise UserError(f"optim.schedule must be 'constant' or 'cosine', got {self.schedule!r}")


@dataclass(frozen=True, slots=True)
class ParamGroup:
    """A named set of trainable parameters with its own learning rate."""

    name: str
    params: tuple[torch.nn.Parameter, ...]
    lr: float


def build_optimizer(groups: Sequence[ParamGroup], config: OptimConfig) -> torch.optim.AdamW:
    groups = [g for g in groups if g.params]
    if not groups:
        raise ValueError("no trainable parameters: the stage's freezing leaves nothing to train")
    return torch.optim.AdamW(
        [{"params": list(g.params), "lr": g.lr, "name": g.name} for g in groups],
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
        foreach=False,  # same arithmetic on CPU tensors and DTensors
    )


def lr_factor(step: int, config: OptimConfig, total_steps: int) -> float:
    """Multiplier of each group's LR at `step` (0-based)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(total_steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config, total_steps))
