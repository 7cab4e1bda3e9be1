from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from nulltta.equations import ddim_coefficients, paper_kl_weight
from nulltta.flow_equations import (
    flow_paper_kl_weight,
    flow_step_coefficients,
    forward_step_variance,
    gaussian_step_coefficients,
    one_step_kl_weight,
    posterior_std,
    velocity_to_epsilon,
    velocity_to_x0,
)


def _schedule(steps=12, shift=3.0):
    scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler, [float(s) for s in scheduler.sigmas]


def test_velocity_conversions_invert_the_interpolation():
    x0, eps = torch.randn(2, 3, 4, 4).unbind(0)
    for sigma in (0.0, 0.3, 1.0):
        x_t = (1 - sigma) * x0 + sigma * eps
        velocity = eps - x0
        torch.testing.assert_close(velocity_to_x0(velocity, x_t, sigma), x0)
        torch.testing.assert_close(velocity_to_epsilon(velocity, x_t, sigma), eps)


def test_eta_zero_is_the_schedulers_euler_step():
    scheduler, sigmas = _schedule()
    x, v = torch.randn(2, 1, 4, 8, 8).unbind(0)
    for i, t in enumerate(scheduler.timesteps):
        a, b, std = flow_step_coefficients(sigmas[i], sigmas[i + 1], eta=0.0)
        assert std == 0 and a == pytest.approx(1.0, abs=1e-12)
        expected = scheduler.step(v, t, x).prev_sample
        torch.testing.assert_close(a * x + b * v, expected, atol=1e-6, rtol=1e-6)


def test_full_noise_end_is_the_schedulers_stochastic_sampling_step():
    # std = sigma_p (k = 0): x_p = (1 - sigma_p) x0_hat + sigma_p z, diffusers' stochastic_sampling.
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, stochastic_sampling=True)
    scheduler.set_timesteps(10)
    sigmas = [float(s) for s in scheduler.sigmas]
    x, v = torch.randn(2, 1, 4, 8, 8).unbind(0)
    for i, t in enumerate(scheduler.timesteps[:-1]):
        sigma_t, sigma_p = sigmas[i], sigmas[i + 1]
        eta = sigma_p / posterior_std(1 - sigma_t, sigma_t, 1 - sigma_p, sigma_p, 1.0)
        a, b, std = flow_step_coefficients(sigma_t, sigma_p, eta)
        assert std == pytest.approx(sigma_p)
        z = randn_tensor(x.shape, generator=torch.Generator().manual_seed(i))
        expected = scheduler.step(v, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        torch.testing.assert_close(a * x + b * v + std * z, expected, atol=1e-5, rtol=1e-5)
        x0 = velocity_to_x0(v, x, sigma_t)  # the x0 the scheduler uses
        torch.testing.assert_close((expected - sigma_p * z) / (1 - sigma_p), x0, atol=1e-5, rtol=0)


@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_gaussian_step_reduces_to_ddim_for_variance_preserving_marginals(eta):
    for abar_t, abar_p in ((0.1, 0.3), (0.5, 0.52), (0.9, 0.999)):
        ours = gaussian_step_coefficients(
            math.sqrt(abar_t), math.sqrt(1 - abar_t), math.sqrt(abar_p), math.sqrt(1 - abar_p), eta
        )
        assert ours == pytest.approx(ddim_coefficients(abar_t, abar_p, eta), rel=1e-10)


def test_eta_one_std_is_the_bayes_posterior_of_the_forward_step():
    for sigma_t, sigma_p in ((1.0, 0.9), (0.7, 0.5), (0.1, 0.02)):
        signal_t, signal_p = 1 - sigma_t, 1 - sigma_p
        ratio = signal_t / signal_p
        forward = forward_step_variance(signal_t, sigma_t, signal_p, sigma_p)
        precision = 1 / sigma_p**2 + ratio**2 / forward  # prior N(., sigma_p^2) times likelihood
        assert posterior_std(signal_t, sigma_t, signal_p, sigma_p) ** 2 == pytest.approx(
            1 / precision, rel=1e-9
        )


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize(("sigma_t", "sigma_p"), [(1.0, 0.8), (0.6, 0.35), (0.2, 0.05)])
def test_flow_step_keeps_the_marginals(eta, sigma_t, sigma_p):
    # x_t ~ q(x_t | x0) and the true velocity: x_p must be ~ N((1 - sigma_p) x0, sigma_p^2).
    generator = torch.Generator().manual_seed(0)
    n, dim = 200_000, 4
    x0 = torch.tensor([1.5, -0.5, 0.0, 2.0], dtype=torch.float64)
    eps = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    z = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    x_t = (1 - sigma_t) * x0 + sigma_t * eps
    a, b, std = flow_step_coefficients(sigma_t, sigma_p, eta)
    x_p = a * x_t + b * (eps - x0) + std * z
    torch.testing.assert_close(x_p.mean(0), (1 - sigma_p) * x0, atol=4e-3, rtol=0)
    torch.testing.assert_close(
        x_p.std(0), torch.full((dim,), sigma_p, dtype=torch.float64), atol=4e-3, rtol=0
    )


def test_one_step_kl_weight_is_the_released_lam_t():
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    abar = scheduler.alphas_cumprod.double()
    for t in (1, 10, 500, 999):
        a_t, a_p = float(abar[t]), float(abar[t - 1])
        weight = one_step_kl_weight(
            math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_p), math.sqrt(1 - a_p)
        )
        beta = 1 - a_t / a_p  # = scheduler.betas[t] up to its float32 rounding
        assert float(scheduler.betas[t]) == pytest.approx(beta, rel=1e-3)
        assert weight == pytest.approx(paper_kl_weight(beta, a_t), rel=1e-9)


def test_flow_paper_weight_is_the_velocity_form_of_the_one_step_weight():
    for sigma in (0.05, 0.5, 0.95):
        sigma_p = sigma - 1e-3
        expected = (1 - sigma) ** 2 * one_step_kl_weight(1 - sigma, sigma, 1 - sigma_p, sigma_p)
        assert flow_paper_kl_weight(sigma) == pytest.approx(expected, rel=1e-6)
    at_one = flow_paper_kl_weight(1.0)
    assert 0 < at_one < flow_paper_kl_weight(0.5) and math.isfinite(at_one)
    assert flow_paper_kl_weight(5e-4) > 0  # grid step floored at sigma / 2, not below zero


def test_last_flow_step_is_deterministic_tweedie():
    a, b, std = flow_step_coefficients(0.03, 0.0, 1.0)
    assert std == 0 and a == 1.0 and b == pytest.approx(-0.03)  # x_p = x_t - sigma v = x0_hat
