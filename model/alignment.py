"""Progressive audio-visual alignment: per-layer weights on the text and audio cross-attention outputs.

ActAvatar weights text high / audio low in early layers (action structure) and the reverse in deep
layers (lip detail). Schedules over depth x = i / (L - 1):
  linear   w(x) = start + (end - start) * x
  cosine   w(x) = end + (start - end) * (1 + cos(pi x)) / 2
  constant w(x) = start            (ablation; text start 1.0 reproduces Wan)
  learned  one parameter per layer and modality, initialised from `learned_init`.

`NEUTRAL` (text and audio weight 1 in every layer) is what an imported Wan checkpoint gets: the
model then is exactly Wan. A schedule chosen on top of such a backbone can warm up from neutral:
with `warmup_steps=N` the weights are 1 + p·(w − 1) with p = step / N rising from 0 to 1 over the
first N training steps (the trainer calls `set_step`), so a frozen backbone never sees a changed
cross-attention at step 0. A built model starts fully ramped (p = 1): sampling always uses the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

Schedule = Literal["linear", "cosine", "constant", "learned"]
_SCHEDULES = ("linear", "cosine", "constant", "learned")


@dataclass(frozen=True, kw_only=True, slots=True)
class AlignmentConfig:
    """Args:
    schedule: how weights vary with depth.
    learned_init: the fixed schedule a "learned" schedule starts from.
    text_start, text_end: text weight at the first and last block.
    audio_start, audio_end: audio weight at the first and last block.
    warmup_steps: ramp the weights from neutral (1) to the schedule over this many training steps.
    """

    schedule: Schedule = "linear"
    learned_init: Literal["linear", "cosine", "constant"] = "linear"
    text_start: float = 1.0
    text_end: float = 0.5
    audio_start: float = 0.25
    audio_end: float = 1.0
    warmup_steps: int = 0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"alignment.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in _SCHEDULES:
            raise ValueError(f"alignment.schedule must be one of {_SCHEDULES}, got {self.schedule!r}")
        if self.learned_init not in _SCHEDULES[:3]:
            raise ValueError(f"alignment.learned_init must be one of {_SCHEDULES[:3]}, got {self.learned_init!r}")
        for key in ("text_start", "text_end", "audio_start", "audio_end"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"alignment.{key} must be a finite number >= 0, got {value}")


# Every layer's text and audio output at weight 1: Wan's own cross-attention (the audio branch adds zero at import).
NEUTRAL = AlignmentConfig(schedule="constant", text_start=1.0, text_end=1.0, audio_start=1.0, audio_end=1.0)


def schedule_weights(schedule: str, start: float, end: float, num_layers: int) -> torch.Tensor:
    """(num_layers,) float32 weights of a fixed schedule."""
    x = torch.linspace(0.0, 1.0, num_layers, dtype=torch.float64) if num_layers > 1 else torch.zeros(1, dtype=torch.float64)
    if schedule == "linear":
        w = start + (end - start) * x
    elif schedule == "cosine":
        w = end + (start - end) * (1 + torch.cos(math.pi * x)) / 2
    elif schedule == "constant":
        w = torch.full_like(x, start)
    else:
        raise ValueError(f"unknown fixed schedule {schedule!r}")
    return w.float()


class ProgressiveAlignment(nn.Module):
    """Holds the per-layer weights; `forward()` returns (text (L,), audio (L,)) in fp32.

    Args:
        num_layers: DiT depth L.
        config: schedule and end points.
    """

    def __init__(self, num_layers: int, config: AlignmentConfig) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.config = config
        fixed = config.learned_init if config.schedule == "learned" else config.schedule
        text = schedule_weights(fixed, config.text_start, config.text_end, num_layers)
        audio = schedule_weights(fixed, config.audio_start, config.audio_end, num_layers)
        if config.schedule == "learned":
            self.text_weight = nn.Parameter(text)
            self.audio_weight = nn.Parameter(audio)
        else:
            # Derived from the config, so not saved: a checkpoint cannot silently override the schedule.
            self.register_buffer("text_weight", text, persistent=False)
            self.register_buffer("audio_weight", audio, persistent=False)
        # Warm-up progress p in [0, 1]: set by the trainer each step, 1 otherwise (not saved).
        self.register_buffer("progress", torch.ones(()), persistent=False)

    def set_step(self, step: int) -> None:
        """Warm-up position at optimizer step `step` (no-op without warm-up)."""
        n = self.config.warmup_steps
        with torch.no_grad():
            self.progress.fill_(min(1.0, step / n) if n > 0 else 1.0)

    def reset_parameters(self) -> None:
        """Recompute the weights (after building on the meta device)."""
        cfg = self.config
        fixed = cfg.learned_init if cfg.schedule == "learned" else cfg.schedule
        with torch.no_grad():
            self.text_weight.copy_(schedule_weights(fixed, cfg.text_start, cfg.text_end, self.num_layers))
            self.audio_weight.copy_(schedule_weights(fixed, cfg.audio_start, cfg.audio_end, self.num_layers))
            self.progress.fill_(1.0)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        text, audio = self.text_weight.float(), self.audio_weight.float()
        if self.config.warmup_steps == 0:
            return text, audio
        p = self.progress.float()  # a tensor, not a Python float: no host sync, compile-friendly
        return torch.lerp(torch.ones_like(text), text, p), torch.lerp(torch.ones_like(audio), audio, p)
