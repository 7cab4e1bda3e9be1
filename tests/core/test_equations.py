from __future__ import annotations

import inspect
import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from nulltta.equations import (
    StepCoefficients,
    annealing_schedule,
    cfg_combine,
    ddpm_coefficients,
    embedding_kl,
    exact_local_kl,
    inner_steps_schedule,
    paper_kl_weight,
    paper_local_kl,
    squared_norm,
    to_epsilon,
    transition_mean,
    tweedie_x0,
    zeroth_order_gradient,
)
from nulltta.schedulers import step_coefficients

SD_SCHEDULE = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False
)


def test_cfg_combine_equals_both_forms():
    eu, ec = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    s = 7.5
    torch.testing.assert_close(cfg_combine(eu, ec, s), (1 - s) * eu + s * ec)
    torch.testing.assert_close(cfg_combine(eu, ec, 1.0), ec)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_tweedie_matches_scheduler_pred_original_sample(prediction_type):
    scheduler = DDIMScheduler(
        **SD_SCHEDULE, prediction_type=prediction_type, set_alpha_to_one=False
    )
    scheduler.set_timesteps(20)
    x, output = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    for t in scheduler.timesteps[[0, 7, 19]]:
        abar = float(scheduler.alphas_cumprod[t])
        signal, noise = math.sqrt(abar), math.sqrt(1 - abar)
        eps = to_epsilon(output, x, signal, noise, prediction_type)
        expected = scheduler.step(output, t, x, eta=0.0).pred_original_sample
        torch.testing.assert_close(
            tweedie_x0(x, eps, signal, noise), expected, atol=1e-5, rtol=1e-5
        )


def test_to_epsilon_rejects_unknown_type():
    with pytest.raises(ValueError, match="prediction_type"):
        to_epsilon(torch.zeros(1), torch.zeros(1), 1.0, 0.0, "flow")


@pytest.mark.parametrize("eta", [1.0, 0.5])
@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_coefficients_reproduce_scheduler_step(eta, steps):
    scheduler = DDIMScheduler(**SD_SCHEDULE, set_alpha_to_one=False, steps_offset=1)
    scheduler.set_timesteps(steps)
    x, eps, z = torch.randn(3, 1, 4, 8, 8).unbind(0)
    for t in scheduler.timesteps:
        coefficients = step_coefficients(scheduler, int(t), eta)
        ours = transition_mean(x, eps, coefficients) + coefficients.std * z
        theirs = scheduler.step(eps, t, x, eta=eta, variance_noise=z).prev_sample
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large"])
def test_ddpm_coefficients_reproduce_scheduler_step(variance_type):
    scheduler = DDPMScheduler(**SD_SCHEDULE, variance_type=variance_type)
    scheduler.set_timesteps(25)
    x, eps = torch.randn(2, 1, 4, 8, 8).unbind(0)
    for t in scheduler.timesteps:
        coefficients = step_coefficients(scheduler, int(t))
        z = randn_tensor(x.shape, generator=torch.Generator().manual_seed(int(t)))
        ours = transition_mean(x, eps, coefficients) + coefficients.std * z
        theirs = scheduler.step(
            eps, t, x, generator=torch.Generator().manual_seed(int(t))
        ).prev_sample
        torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_ddpm_single_step_coefficient_matches_method_md():
    scheduler = DDPMScheduler(**SD_SCHEDULE)
    scheduler.set_timesteps(1000)
    t = 500
    c = step_coefficients(scheduler, t)
    abar_t, abar_p = scheduler.alphas_cumprod[t].item(), scheduler.alphas_cumprod[t - 1].item()
    alpha, beta = abar_t / abar_p, 1 - abar_t / abar_p
    assert c.b == pytest.approx(-beta / (math.sqrt(alpha) * math.sqrt(1 - abar_t)), rel=1e-9)


def _coefficients(b=-0.3, std=0.2, lam=0.5):
    return StepCoefficients(
        timestep=10, signal=0.9, noise=0.4, a=1.1, b=b, std=std, paper_kl_weight=lam
    )


def test_exact_local_kl_matches_monte_carlo():
    torch.manual_seed(0)
    s, c = 5.0, _coefficients()
    x, eps_c = torch.randn(1, 16), torch.randn(1, 16)
    eps_u, eps_u0 = torch.randn(1, 16) * 0.1, torch.randn(1, 16) * 0.1
    mean_p = transition_mean(x, cfg_combine(eps_u, eps_c, s), c)
    mean_q = transition_mean(x, cfg_combine(eps_u0, eps_c, s), c)
    samples = mean_p + c.std * torch.randn(200_000, 16, dtype=torch.float64)
    log_p = -((samples - mean_p) ** 2).sum(1) / (2 * c.std**2)
    log_q = -((samples - mean_q) ** 2).sum(1) / (2 * c.std**2)
    monte_carlo = (log_p - log_q).mean().item()
    closed = exact_local_kl(eps_u, eps_u0, s, c).item()
    assert closed == pytest.approx(monte_carlo, rel=0.03, abs=1e-3)


def test_exact_local_kl_needs_noise():
    with pytest.raises(ValueError, match="eta > 0"):
        exact_local_kl(torch.zeros(1, 2), torch.ones(1, 2), 7.5, _coefficients(std=0.0))


def test_paper_local_kl_and_weight_closed_form():
    eps_u, eps_u0 = torch.ones(2, 3), torch.zeros(2, 3)
    c = _coefficients(lam=0.25)
    torch.testing.assert_close(paper_local_kl(eps_u, eps_u0, 2.0, c), torch.tensor([3.0, 3.0]))
    assert paper_kl_weight(0.1, 0.5) == pytest.approx(0.1 / (2 * 0.9 * 0.5))


def test_embedding_kl_matches_monte_carlo():
    phi, phi_ref, var = torch.randn(1, 6), torch.randn(1, 6), 0.5
    samples = phi + math.sqrt(var) * torch.randn(200_000, 6, dtype=torch.float64)
    log_ratio = (-((samples - phi) ** 2).sum(1) + ((samples - phi_ref) ** 2).sum(1)) / (2 * var)
    assert embedding_kl(phi, phi_ref, var).item() == pytest.approx(
        log_ratio.mean().item(), rel=0.03
    )


def test_squared_norm_is_per_sample():
    x = torch.arange(8.0).reshape(2, 2, 2)
    torch.testing.assert_close(squared_norm(x), torch.tensor([14.0, 126.0]))


def test_inner_steps_schedule_matches_release_totals():
    schedule = inner_steps_schedule(100, 5, 25, 0.008)
    assert schedule[0] == 5 and schedule[-1] == 25 and sum(schedule) == 1520
    assert sum(inner_steps_schedule(100, 5, 55, 0.008)) == 3052
    assert schedule == sorted(schedule)


def test_ramp_down_is_the_release_ramp_reversed_with_the_same_total():
    ramp_up = inner_steps_schedule(20, 5, 25, 0.0406)
    ramp_down = inner_steps_schedule(20, 5, 25, 0.0406, order="ramp_down")
    assert ramp_down == ramp_up[::-1] and sum(ramp_down) == sum(ramp_up)
    assert ramp_down[0] == 25 and ramp_down[-1] == 5
    assert ramp_down == sorted(ramp_down, reverse=True)
    with pytest.raises(ValueError, match="ramp_up"):
        inner_steps_schedule(20, 5, 25, 0.0406, order="down")


def test_annealing_schedule_reaches_zero_at_87():
    tau = annealing_schedule(100, 0.008)
    assert tau[0] == 1.0
    assert tau[86] > 0 and tau[87] == 0 and all(v == 0 for v in tau[87:])
    assert tau[10] == pytest.approx(2 - 1.008**10)


def test_zeroth_order_gradient_points_along_true_gradient():
    target = torch.randn(1, 10)
    params = torch.zeros(1, 10)

    def objective(batch):
        return -((batch - target) ** 2).sum(1)

    estimate = zeroth_order_gradient(
        objective,
        params,
        num_samples=2000,
        smoothing=1e-3,
        generator=torch.Generator().manual_seed(0),
    )
    true_gradient = 2 * (target - params)
    cosine = torch.nn.functional.cosine_similarity(estimate, true_gradient).item()
    assert cosine > 0.9


def _norm_ratio(estimate, true_gradient):
    return (estimate.flatten(1).norm(dim=1) / true_gradient.flatten(1).norm(dim=1)).tolist()


def test_zeroth_order_gradient_has_the_true_gradients_norm():
    # J(phi) = -||phi - target||^2 has gradient 2 (target - phi). With K = 4000
    # directions the estimate's norm is within about 2 sqrt(2 / K) = 4.5% of the
    # true one (1.04, 1.02, 0.99 with this seed); a wrong scale (1 / (K mu^2)
    # for 1 / (K mu)) is off by 1 / mu = 200x, a lost 1 / K by 4000x.
    target = torch.randn(3, 8)
    params = torch.randn(3, 8)

    def objective(batch):
        rows = batch.reshape(-1, *target.shape)  # phi first, then K copies of every row
        return -((rows - target) ** 2).sum(-1).flatten()

    estimate = zeroth_order_gradient(
        objective, params, 4000, 5e-3, generator=torch.Generator().manual_seed(0)
    )
    true_gradient = 2 * (target - params)
    assert all(0.9 < r < 1.1 for r in _norm_ratio(estimate, true_gradient))
    cosine = torch.nn.functional.cosine_similarity(estimate, true_gradient)
    assert (cosine > 0.99).all()


def test_zeroth_order_gradient_at_the_release_settings_averages_to_the_true_gradient():
    # mu = 0.02, K = 4 as released: each estimate is noisy, but 2000 of them
    # (one per row, each with its own directions) average to the gradient of a
    # linear objective, whose finite differences are exact.
    direction = torch.randn(1, 16)
    repeats = 2000
    params = torch.randn(1, 16).expand(repeats, 16).contiguous()

    def objective(batch):
        return (batch * direction).sum(1) * 3.0

    estimate = zeroth_order_gradient(
        objective, params, 4, 0.02, generator=torch.Generator().manual_seed(0)
    )
    mean = estimate.mean(0, keepdim=True)
    assert 0.9 < _norm_ratio(mean, 3.0 * direction)[0] < 1.1
    assert torch.nn.functional.cosine_similarity(mean, direction).item() > 0.98


def test_zeroth_order_gradient_evaluates_one_batch():
    calls = []

    def objective(batch):
        calls.append(batch.shape[0])
        return batch.sum(1)

    zeroth_order_gradient(objective, torch.zeros(2, 3), num_samples=4)
    assert calls == [10]  # (K + 1) * B rows in one call


# ---------------------------------------------------------------- what mutation testing asked for
def test_paper_local_kl_and_embedding_kl_equal_a_hand_computation():
    # s = 7.5 (s^2 != 2 s), eps_u0 != 0 and sigma_phi^2 = 0.01 (1 / (2 var) != 2 var).
    eps_u, eps_u0 = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    c = _coefficients(lam=0.37)
    expected = 7.5**2 * 0.37 * ((eps_u - eps_u0) ** 2).sum((1, 2))
    torch.testing.assert_close(paper_local_kl(eps_u, eps_u0, 7.5, c), expected)
    phi, phi_ref = torch.randn(3, 5), torch.randn(3, 5)
    expected = ((phi - phi_ref) ** 2).sum(1) / (2 * 0.01)
    torch.testing.assert_close(embedding_kl(phi, phi_ref, 0.01), expected)


def test_the_release_defaults_are_the_functions_defaults():
    assert inner_steps_schedule(100, 5, 25) == inner_steps_schedule(100, 5, 25, 0.008)
    assert annealing_schedule(100) == annealing_schedule(100, 0.008)
    assert ddpm_coefficients(0.5, 0.6) == ddpm_coefficients(0.5, 0.6, "fixed_small")
    defaults = inspect.signature(zeroth_order_gradient).parameters
    assert (defaults["num_samples"].default, defaults["smoothing"].default) == (4, 0.02)


def test_error_messages_name_the_fix():
    def message(call, *args):
        with pytest.raises(ValueError) as info:
            call(*args)
        return str(info.value)

    x = torch.zeros(1, 2)
    assert message(to_epsilon, x, x, 1.0, 1.0, "x0") == (
        "unknown prediction_type 'x0'; expected 'epsilon', 'v_prediction' or 'sample'"
    )
    assert message(exact_local_kl, x, x, 7.5, _coefficients(std=0.0)) == (
        "the exact local KL needs a stochastic transition (sigma_t > 0); use eta > 0 "
        "or kl_mode='paper'"
    )
    assert message(ddpm_coefficients, 0.5, 0.6, "learned") == (
        "DDPM variance_type 'learned' is not Gaussian-fixed; use 'fixed_small' or 'fixed_large'"
    )
    expected = "zeroth_order_gradient needs num_samples >= 1 and smoothing > 0"
    assert message(zeroth_order_gradient, lambda b: b.sum(1), x, 0) == expected
    assert message(zeroth_order_gradient, lambda b: b.sum(1), x, 4, 0.0) == expected
    assert message(zeroth_order_gradient, lambda b: b.sum(1), x, 4, -0.1) == expected


def test_zeroth_order_gradient_takes_one_direction():
    estimate = zeroth_order_gradient(lambda b: b.sum(1), torch.zeros(2, 3), 1, 0.5)
    assert estimate.shape == (2, 3) and torch.isfinite(estimate).all()


def test_zeroth_order_directions_come_from_the_generator_on_the_params_device_and_dtype():
    params = torch.randn(2, 3, dtype=torch.float64)

    def objective(batch):
        return (batch**2).sum(1)

    estimate = zeroth_order_gradient(
        objective, params, 3, 0.1, generator=torch.Generator().manual_seed(7)
    )
    v = torch.randn((3, 2, 3), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    differences = objective((params + 0.1 * v).flatten(0, 1)).reshape(3, 2) - objective(params)
    expected = (differences[..., None] * v).sum(0) / (3 * 0.1)
    torch.testing.assert_close(estimate, expected, rtol=1e-12, atol=1e-12)
    half = zeroth_order_gradient(objective, params.bfloat16(), 3, 0.1)
    assert half.dtype == torch.bfloat16
    meta = zeroth_order_gradient(lambda b: b.sum(1), torch.zeros(2, 3, device="meta"), 3)
    assert meta.device.type == "meta"  # drawn where the parameters are (a GPU, say)


def test_zeroth_order_defaults_are_four_directions_of_radius_0_02():
    params, seen = torch.randn(2, 3), []

    def objective(batch):
        seen.append(batch.clone())
        return batch.sum(1)

    zeroth_order_gradient(objective, params, generator=torch.Generator().manual_seed(1))
    v = torch.randn((4, 2, 3), generator=torch.Generator().manual_seed(1))
    (batch,) = seen
    torch.testing.assert_close(batch, torch.cat([params, (params + 0.02 * v).flatten(0, 1)]))


def test_zeroth_order_gradient_uses_given_directions_and_checks_their_shape():
    params, v = torch.randn(2, 3), torch.randn(3, 2, 3)

    def objective(batch):
        return (batch**3).sum(1)

    estimate = zeroth_order_gradient(objective, params, 3, 0.1, directions=v)
    differences = objective((params + 0.1 * v).flatten(0, 1)).reshape(3, 2) - objective(params)
    torch.testing.assert_close(estimate, (differences[..., None] * v).sum(0) / 0.3)
    with pytest.raises(ValueError) as info:
        zeroth_order_gradient(objective, params, 4, 0.1, directions=v)
    assert str(info.value) == (
        "directions of shape (3, 2, 3) do not match (num_samples, *params.shape) = (4, 2, 3)"
    )
