"""Motion-intensity modulation (FantasyTalking): per-sample face / body motion intensities condition the DiT.

    motion (B, S) in [0, 1] -> sinusoidal features per signal (x 1000, like a timestep)
        -> Linear -> SiLU -> Linear (zero-initialised) -> added to the time embedding

The sum feeds every block's adaLN (through `time_proj`) and the head's, so the intensity scales and
shifts all layers the way the timestep does. The last linear starts at zero, so a model that gains
the branch predicts exactly what it did before, and a row of NaN (no intensity, or dropped during
training) adds nothing: one checkpoint samples with and without the condition. A NaN in one column
is an unmeasured signal (e.g. no body keypoints): its features are zeroed.
Signals follow `dataset.pose`: 0 = face intensity, 1 = body intensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from model.embeddings import timestep_sinusoid

SIGNALS = ("face", "body")
_SCALE = 1000.0  # an intensity in [0, 1] spans the sinusoid's range like a timestep in [0, 1000]


@dataclass(frozen=True, kw_only=True, slots=True)
class MotionConfig:
    """Args:
    freq_dim: sinusoidal features per signal.
    """

    freq_dim: int = 64

    def __post_init__(self) -> None:
        if self.freq_dim < 2 or self.freq_dim % 2:
            raise ValueError(f"model.motion.freq_dim must be an even integer >= 2, got {self.freq_dim}")


class MotionEmbedding(nn.Module):
    """(B, len(SIGNALS)) intensities -> (B, dim) additive time-embedding offsets (0 for NaN rows)."""

    def __init__(self, config: MotionConfig, dim: int) -> None:
        super().__init__()
        self.freq_dim = config.freq_dim
        self.linear_1 = nn.Linear(len(SIGNALS) * config.freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        if motion.ndim != 2 or motion.shape[1] != len(SIGNALS):
            raise ValueError(f"motion must be (B, {len(SIGNALS)}) intensities {SIGNALS}, got shape {tuple(motion.shape)}")
        motion = motion.float()
        present = ~torch.isnan(motion)  # (B, S): a signal may be unmeasured (e.g. no body keypoints)
        values = torch.nan_to_num(motion, nan=0.0).clamp(0.0, 1.0) * _SCALE
        feats = timestep_sinusoid(values.flatten(), self.freq_dim).view(*motion.shape, self.freq_dim)
        feats = (feats * present[..., None]).flatten(1)  # (B, S * freq): a missing signal contributes nothing
        out = self.linear_2(F.silu(self.linear_1(feats.to(self.linear_1.weight.dtype))))
        return out * present.any(dim=1)[:, None].to(out.dtype)  # an all-NaN row: exactly unconditioned

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero output: the branch is neutral until trained."""
        nn.init.zeros_(self.linear_2.weight)
        nn.init.zeros_(self.linear_2.bias)


def motion_tensor(values: list[tuple[float | None, float | None] | None], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, 2) float32 from per-sample (face, body) intensities; None -> NaN (a whole row, or one signal)."""
    nan = float("nan")
    rows = [[nan] * len(SIGNALS) if v is None else [nan if x is None else float(x) for x in v] for v in values]
    return torch.tensor(rows, dtype=torch.float32, device=device).reshape(len(rows), len(SIGNALS))
