"""Flow-matching ODE sampling math (pure torch, no models, no I/O): sigmas, solvers, guidance.

Convention (Wan / rectified flow): x_σ = (1 − σ)·x0 + σ·ε with σ = 1 pure noise and σ = 0 data;
the network predicts the velocity v = dx/dσ = ε − x0 at timestep t = σ·1000. Sampling integrates
dx/dσ = v(x, σ) from σ = 1 down to σ = 0 over a shifted σ grid.

Guidance (two conditions, text T and audio A, as in the multi-condition talking-avatar samplers):
    v = v(∅) + s_t·(v(T) − v(∅)) + s_a·(v(T, A) − v(T))
s_t = s_a = 1 gives v(T, A) (one network call); s_t = 1 gives v(T) + s_a·(v(T, A) − v(T)) (two calls);
otherwise three calls. Each scale is active only in its [start, end) fraction of the steps and 1
outside it, so e.g. audio CFG can be limited to the early steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from dataset.errors import UserError

SOLVERS = ("euler", "heun")

# velocity(x, sigma, step) -> v; sigma is a Python float, step the index of the current interval.
Velocity = Callable[[torch.Tensor, float, int], torch.Tensor]


@dataclass(frozen=True, kw_only=True, slots=True)
class GuidanceConfig:
    """Args:
        scale: classifier-free guidance scale (1 = no guidance, the conditional prediction only).
        start: first fraction of the steps where `scale` applies (0 = from the first step).
        end: fraction of the steps where it stops applying (1 = until the last step).
    """

    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.scale < 0:
            raise UserError(f"guidance.scale must be >= 0, got {self.scale}")
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise UserError(f"guidance start/end must satisfy 0 <= start <= end <= 1, got {self.start}, {self.end}")

    def scale_at(self, step: int, num_steps: int) -> float:
        """The scale of step `step` (0-based) of `num_steps`: `scale` inside [start, end), else 1."""
        frac = step / num_steps
        return self.scale if self.start <= frac < self.end else 1.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SamplerConfig:
    """Args:
        steps: ODE steps (network calls per step: 1 Euler, 2 Heun, times the guidance passes).
        solver: "euler" (1st order) or "heun" (2nd order, trapezoidal corrector on every step).
        shift: Wan timestep shift σ' = shift·σ / (1 + (shift − 1)·σ); > 1 spends more steps at high noise
            (Wan uses 5.0 at 720p, 3.0 at 480p); 1 = uniform.
        timestep_scale: network timestep = σ · timestep_scale (Wan: 1000).
        text: text guidance (unconditional = negative prompt, no phases).
        audio: audio guidance (unconditional = no audio, see SampleConfig.audio_uncond).
    """

    steps: int = 30
    solver: str = "heun"
    shift: float = 5.0
    timestep_scale: float = 1000.0
    text: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(scale=5.0))
    audio: GuidanceConfig = field(default_factory=lambda: GuidanceConfig(scale=4.0))

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise UserError(f"sampler.steps must be >= 1, got {self.steps}")
        if self.solver not in SOLVERS:
            raise UserError(f"sampler.solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.shift <= 0:
            raise UserError(f"sampler.shift must be > 0, got {self.shift}")
        if self.timestep_scale <= 0:
            raise UserError(f"sampler.timestep_scale must be > 0, got {self.timestep_scale}")


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan / SD3 timestep shift; keeps 0 and 1 fixed and is monotone for shift > 0."""
    return shift * sigmas / (1.0 + (shift - 1.0) * sigmas)


def sigma_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """(steps + 1,) float64 σ from 1 down to 0: uniform in σ, then shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return shift_sigmas(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)


def guidance_passes(text_scale: float, audio_scale: float) -> tuple[str, ...]:
    """Which predictions the guidance formula needs: "full" = v(T, A), "text" = v(T), "uncond" = v(∅)."""
    if text_scale == 1.0:
        return ("full",) if audio_scale == 1.0 else ("full", "text")
    return ("full", "text", "uncond")


def combine_guidance(preds: dict[str, torch.Tensor], text_scale: float, audio_scale: float) -> torch.Tensor:
    """v(∅) + s_t·(v(T) − v(∅)) + s_a·(v(T, A) − v(T)), evaluated with only the predictions it needs."""
    full = preds["full"]
    if text_scale == 1.0:
        if audio_scale == 1.0:
            return full
        return preds["text"] + audio_scale * (full - preds["text"])  # v(∅) cancels
    uncond, text = preds["uncond"], preds["text"]
    return uncond + text_scale * (text - uncond) + audio_scale * (full - text)


def euler_step(velocity: Velocity, x: torch.Tensor, sigma: float, sigma_next: float, step: int) -> torch.Tensor:
    """x(σ_next) ≈ x + (σ_next − σ)·v(x, σ)."""
    return x + (sigma_next - sigma) * velocity(x, sigma, step)


def heun_step(velocity: Velocity, x: torch.Tensor, sigma: float, sigma_next: float, step: int) -> torch.Tensor:
    """Heun (explicit trapezoid): Euler predictor, then the mean of the slopes at both ends.

    The rectified-flow velocity is defined at σ = 0 too, so unlike EDM's Heun the last step is
    corrected as well (2 calls on every step keeps the order 2 up to the data end).
    """
    d = sigma_next - sigma
    v0 = velocity(x, sigma, step)
    x_pred = x + d * v0
    v1 = velocity(x_pred, sigma_next, step)
    return x + d * 0.5 * (v0 + v1)


_STEPS = {"euler": euler_step, "heun": heun_step}


def integrate(
    velocity: Velocity, x: torch.Tensor, sigmas: torch.Tensor, solver: str = "euler",
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> torch.Tensor:
    """Integrate dx/dσ = velocity from sigmas[0] to sigmas[-1] (x in fp32 between steps)."""
    if solver not in _STEPS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    step_fn = _STEPS[solver]
    values = [float(s) for s in sigmas]
    steps: Iterable[int] = range(len(values) - 1)
    if progress is not None:
        steps = progress(steps)
    x = x.float()
    for i in steps:
        x = step_fn(velocity, x, values[i], values[i + 1], i).float()
    return x


def guided_velocity(
    predict: Callable[[str, torch.Tensor, float], torch.Tensor], cfg: SamplerConfig
) -> Velocity:
    """A `Velocity` from `predict(condition, x, sigma)` (condition in "full", "text", "uncond") and the
    step-dependent text/audio guidance of `cfg`."""

    def velocity(x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        s_t = cfg.text.scale_at(step, cfg.steps)
        s_a = cfg.audio.scale_at(step, cfg.steps)
        preds = {name: predict(name, x, sigma).float() for name in guidance_passes(s_t, s_a)}
        return combine_guidance(preds, s_t, s_a)

    return velocity
