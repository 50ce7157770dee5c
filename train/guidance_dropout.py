"""Condition dropout for classifier-free guidance: which samples of a batch train unconditionally.

    guidance: {text_drop: 0.1, audio_drop: 0.1, both_drop: 0.1, negative_prompt: ""}

One uniform draw u per sample from the trainer's seeded noise generator (so an exact resume
replays it): u in [0, text) drops the text only, the next `audio_drop` drops the audio only,
the next `both_drop` drops both. The replaced inputs come from `model.guidance.unconditional_inputs`,
the function the sampler uses for its guidance branches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from dataset.errors import UserError


@dataclass(frozen=True, kw_only=True, slots=True)
class GuidanceDropoutConfig:
    """Args:
    text_drop: share of samples trained with their audio but without their caption (replaced by the
        negative prompt as the base block, no phases).
    audio_drop: share trained with their caption and zero audio features: v(T), the base of the
        sampler's audio guidance.
    both_drop: share trained with neither: v(∅), the base of the sampler's text guidance.
    negative_prompt: the text of a dropped caption; sampling uses the same (recorded in conditioning.json).
    motion_drop: share of samples trained without their motion intensities (models with
        `model.motion`; an independent draw), so the checkpoint also samples without `--motion-intensity`.
    pose_drop: share of samples trained pose-free (models with `model.pose`; an independent draw), so
        one checkpoint samples with `--pose FILE` and without (ApoAvatar's pose-controlled and
        pose-free inference).

    The default 0.1 each makes a checkpoint fit the sampler's default guidance (text 5, audio 4);
    all three 0 trains fully conditioned (sample such a checkpoint with guidance scales 1).
    """

    text_drop: float = 0.1
    audio_drop: float = 0.1
    both_drop: float = 0.1
    negative_prompt: str = ""
    motion_drop: float = 0.1
    pose_drop: float = 0.5

    def __post_init__(self) -> None:
        for key in ("text_drop", "audio_drop", "both_drop", "motion_drop", "pose_drop"):
            value = getattr(self, key)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise UserError(f"guidance.{key} must be in [0, 1], got {value}")
        total = self.text_drop + self.audio_drop + self.both_drop
        if total > 1.0 + 1e-9:
            raise UserError(f"guidance.text_drop + audio_drop + both_drop must be <= 1, got {total:g}")

    @property
    def enabled(self) -> bool:
        return self.text_drop + self.audio_drop + self.both_drop > 0

    @property
    def drops_text(self) -> bool:
        """Some samples train without their caption (they need the negative prompt's features)."""
        return self.text_drop + self.both_drop > 0

    @property
    def drops_audio(self) -> bool:
        return self.audio_drop + self.both_drop > 0


def draw_drops(config: GuidanceDropoutConfig, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """((B,) drop_text, (B,) drop_audio) bool on the CPU; one draw per sample from `generator`."""
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    text_only = u < config.text_drop
    audio_end = config.text_drop + config.audio_drop
    audio_only = (u >= config.text_drop) & (u < audio_end)
    both = (u >= audio_end) & (u < audio_end + config.both_drop)
    return text_only | both, audio_only | both
