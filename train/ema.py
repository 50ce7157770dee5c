"""Exponential moving average of the trainable weights (Open-Sora style `ema_decay`).

Shadows are fp32 copies of the trainable parameters; under FSDP2 they are DTensors sharded like
the parameters, so the EMA costs one fp32 copy of the trainable shard per rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dataset.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class EMAConfig:
    """Args:
    decay: EMA decay per step (0 = no EMA).
    warmup: use min(decay, (1 + step) / (10 + step)) so early averages do not freeze the init.
    """

    decay: float = 0.0
    warmup: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise UserError(f"ema.decay must be in [0, 1), got {self.decay}")


_AC_PREFIX = "_checkpoint_wrapped_module."


def clean_name(name: str) -> str:
    """Parameter name without activation-checkpoint wrapper parts (= the state-dict key)."""
    return name.replace(_AC_PREFIX, "")


class EMA:
    """EMA of `model`'s parameters that require grad.

    Args:
        model: the (possibly sharded) model.
        config: decay options.
    """

    def __init__(self, model: nn.Module, config: EMAConfig) -> None:
        self.config = config
        self.shadow = {clean_name(n): p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    def decay_at(self, step: int) -> float:
        d = self.config.decay
        return min(d, (1 + step) / (10 + step)) if self.config.warmup else d

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = self.decay_at(step)
        for name, p in model.named_parameters():
            shadow = self.shadow.get(clean_name(name))
            if shadow is not None:
                shadow.lerp_(p.detach().float(), 1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise ValueError(f"EMA state misses {len(missing)} parameter(s), e.g. {missing[0]}")
        for name, value in state.items():
            if name in self.shadow:
                self.shadow[name].copy_(value)
