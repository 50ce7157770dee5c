"""Flow-matching sampler math on analytic velocity fields with known endpoints."""

from __future__ import annotations

import math

import pytest
import torch

from evaluation.sampler import (
    GuidanceConfig,
    SamplerConfig,
    combine_guidance,
    guidance_passes,
    guided_velocity,
    integrate,
    shift_sigmas,
    sigma_schedule,
)

MU, S = 2.0, 0.5  # data x0 ~ N(MU, S^2); noise eps ~ N(0, 1); x_sigma = (1 - sigma) x0 + sigma eps


def gaussian_velocity(x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
    """Exact marginal velocity E[eps - x0 | x_sigma = x] for Gaussian data.

    x_sigma has mean m = (1 - sigma) MU and std c = sqrt((1 - sigma)^2 S^2 + sigma^2); the probability
    flow is x(sigma) = m(sigma) + c(sigma) z, so v = m' + c' (x - m) / c and x(0) = MU + S eps exactly.
    """
    m = (1 - sigma) * MU
    c = math.sqrt((1 - sigma) ** 2 * S**2 + sigma**2)
    dc = (-(1 - sigma) * S**2 + sigma) / c
    return -MU + dc * (x - m) / c


def _endpoint_error(solver: str, steps: int, shift: float = 1.0) -> float:
    eps = torch.randn(4096, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x0 = integrate(gaussian_velocity, eps, sigma_schedule(steps, shift), solver)
    return float((x0.double() - (MU + S * eps)).abs().max())


def test_sigma_schedule_and_shift():
    sig = sigma_schedule(10, 1.0)
    assert sig.shape == (11,) and sig[0] == 1.0 and sig[-1] == 0.0
    assert torch.allclose(sig, torch.linspace(1, 0, 11, dtype=torch.float64))
    shifted = sigma_schedule(10, 5.0)
    assert shifted[0] == 1.0 and shifted[-1] == 0.0 and bool((shifted.diff() < 0).all())
    assert bool((shifted[1:-1] > sig[1:-1]).all())  # shift > 1 spends more steps at high noise
    # Wan / SD3 formula and its inverse-shift identity: shift(shift(s, a), 1/a) = s
    s = torch.rand(100, dtype=torch.float64)
    assert torch.allclose(shift_sigmas(s, 3.0), 3.0 * s / (1 + 2.0 * s))
    assert torch.allclose(shift_sigmas(shift_sigmas(s, 3.0), 1 / 3.0), s)


def test_diffusers_flow_match_scheduler_agrees_on_shifted_sigmas():
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.FlowMatchEulerDiscreteScheduler(shift=5.0)
    sched.set_timesteps(sigmas=torch.linspace(1.0, 0.0, 21)[:-1].tolist())
    assert torch.allclose(sched.sigmas.double(), sigma_schedule(20, 5.0), atol=1e-6)


def test_constant_velocity_is_exact_for_both_solvers():
    x1 = torch.randn(8, dtype=torch.float64)
    target = torch.randn(8, dtype=torch.float64)

    def straight(x, sigma, step):  # v = eps - x0 along a straight path
        return x1 - target

    for solver in ("euler", "heun"):
        out = integrate(straight, x1, sigma_schedule(3, 5.0), solver)
        assert torch.allclose(out.double(), target.float().double(), atol=1e-5)


def test_gaussian_flow_heun_beats_euler_and_both_converge():
    for steps in (4, 8, 16):
        euler, heun = _endpoint_error("euler", steps), _endpoint_error("heun", steps)
        assert heun < euler / 5, (steps, euler, heun)
        assert _endpoint_error("heun", steps, shift=3.0) < _endpoint_error("euler", steps, shift=3.0) / 5
    # order check: halving the step cuts Euler's error ~2x and Heun's ~4x
    e8, e16 = _endpoint_error("euler", 8), _endpoint_error("euler", 16)
    h8, h16 = _endpoint_error("heun", 8), _endpoint_error("heun", 16)
    assert 1.6 < e8 / e16 < 2.6 and h8 / h16 > 2.5
    assert _endpoint_error("heun", 32) < 1e-3 and _endpoint_error("heun", 32, shift=3.0) < 2e-3


def test_guidance_formula_and_passes():
    full, text, uncond = torch.tensor([3.0]), torch.tensor([2.0]), torch.tensor([1.0])
    preds = {"full": full, "text": text, "uncond": uncond}
    assert guidance_passes(1.0, 1.0) == ("full",) and combine_guidance({"full": full}, 1.0, 1.0) == 3.0
    assert guidance_passes(1.0, 4.0) == ("full", "text")
    assert combine_guidance({"full": full, "text": text}, 1.0, 4.0) == 2.0 + 4.0 * 1.0
    assert guidance_passes(5.0, 1.0) == ("full", "text", "uncond")
    assert combine_guidance(preds, 5.0, 4.0) == 1.0 + 5.0 * 1.0 + 4.0 * 1.0
    # with both scales at 1 the three-pass formula collapses to the full prediction
    assert combine_guidance(preds, 1.0 + 0.0, 1.0) == full


def test_guidance_step_ranges_choose_the_network_calls():
    cfg = SamplerConfig(steps=10, solver="euler", text=GuidanceConfig(scale=1.0),
                        audio=GuidanceConfig(scale=3.0, start=0.0, end=0.3))
    calls: list[tuple[str, int]] = []

    def predict(branch, x, sigma):
        calls.append((branch, round(sigma, 6)))
        return x * 0 + (2.0 if branch == "full" else 1.0)

    v = guided_velocity(predict, cfg)
    sig = sigma_schedule(10)
    out = [float(v(torch.zeros(1), float(sig[i]), i)) for i in range(10)]
    assert out[:3] == [1.0 + 3.0] * 3 and out[3:] == [2.0] * 7  # audio CFG only on steps 0, 1, 2
    assert len(calls) == 3 * 2 + 7
    assert GuidanceConfig(scale=2.0, start=0.5, end=1.0).scale_at(4, 10) == 1.0
    assert GuidanceConfig(scale=2.0, start=0.5, end=1.0).scale_at(5, 10) == 2.0


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match="sampler.solver"):
        SamplerConfig(solver="rk4")
    with pytest.raises(ValueError, match="sampler.steps"):
        SamplerConfig(steps=0)
    with pytest.raises(ValueError, match="start <= end"):
        GuidanceConfig(start=0.8, end=0.2)
