"""SD2.x-style v-prediction (and sample prediction) end to end, on tiny SD pipelines."""

from __future__ import annotations

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.adapters import make_adapter
from nulltta.equations import cfg_combine, exact_local_kl, transition_mean, tweedie_x0

PROMPT = "a red circle on a white background"
KINDS = ["epsilon", "v_prediction", "sample"]


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_plain_settings_equal_the_stock_pipeline(sd_pipes, kind):
    pipe = sd_pipes[kind]
    aligner = NullTextAligner(pipe, "brightness", num_inference_steps=10, seed=2)
    ours = aligner.sample_baseline(PROMPT, output_type="pt")
    reference = pipe(
        PROMPT,
        num_inference_steps=10,
        guidance_scale=7.5,
        eta=1.0,
        generator=torch.Generator().manual_seed(2),
        output_type="pt",
    ).images
    # x0-prediction goes through eps = (x_t - alpha x0) / sigma, which scales rounding
    # by 1 / sigma (about 30 at the last step): measured 9.5e-6 at 20 steps.
    torch.testing.assert_close(ours, reference, atol=3e-5 if kind == "sample" else 1e-5, rtol=0)


def _raw_and_eps(adapter, latents, timestep, embeddings):
    unet = adapter.pipeline.unet
    with torch.no_grad():
        raw = unet(latents, timestep, encoder_hidden_states=embeddings["encoder_hidden_states"])[0]
        return raw, adapter.predict_noise(latents, timestep, embeddings)


@pytest.mark.parametrize("kind", KINDS)
def test_tweedie_equals_the_schedulers_pred_original_sample(sd_pipes, kind):
    adapter = make_adapter(sd_pipes[kind])
    cond, _ = adapter.encode_prompt(PROMPT)
    timesteps = adapter.set_timesteps(10)
    latents = torch.randn(2, 4, 8, 8)
    for t in (timesteps[0], timesteps[4], timesteps[-1]):
        raw, eps = _raw_and_eps(
            adapter, latents, t, {k: v.repeat(2, 1, 1) for k, v in cond.items()}
        )
        coefficients = adapter.step_coefficients(t)
        expected = adapter.scheduler.step(raw, t, latents, eta=1.0).pred_original_sample
        x0 = tweedie_x0(latents, eps, coefficients.signal, coefficients.noise)
        torch.testing.assert_close(x0, expected, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_exact_kl_matches_monte_carlo_of_the_schedulers_own_step(sd_pipes, kind, monte_carlo_kl):
    # Closed form from our eps and (b, std); Monte Carlo from diffusers' DDIM step on the raw
    # (v / x0 / eps) CFG outputs: checks the conversion and the coefficients together.
    adapter, s = make_adapter(sd_pipes[kind]), 7.5
    cond, null = adapter.encode_prompt(PROMPT)
    moved = {"encoder_hidden_states": null["encoder_hidden_states"] + 1.5}
    t = adapter.set_timesteps(10)[3]
    latents = torch.randn(1, 4, 8, 8)
    raw_c, eps_c = _raw_and_eps(adapter, latents, t, cond)
    raw_u, eps_u = _raw_and_eps(adapter, latents, t, moved)
    raw_u0, eps_u0 = _raw_and_eps(adapter, latents, t, null)
    coefficients = adapter.step_coefficients(t)
    closed = float(exact_local_kl(eps_u, eps_u0, s, coefficients))

    n = 4000
    x = latents.expand(n, -1, -1, -1)
    out_p = cfg_combine(raw_u, raw_c, s).expand(n, -1, -1, -1)
    out_q = cfg_combine(raw_u0, raw_c, s)
    step = adapter.scheduler.step
    samples = step(out_p, t, x, eta=1.0, variance_noise=torch.randn(n, 4, 8, 8)).prev_sample
    mean_p = step(out_p[:1], t, latents, eta=1.0, variance_noise=torch.zeros(1, 4, 8, 8))
    mean_q = step(out_q, t, latents, eta=1.0, variance_noise=torch.zeros(1, 4, 8, 8))
    estimate, std = monte_carlo_kl(samples, mean_p.prev_sample, mean_q.prev_sample)
    assert std == pytest.approx(coefficients.std, rel=0.01)
    assert closed > 1.0  # large enough for a 2% Monte Carlo error
    assert closed == pytest.approx(estimate, rel=0.05)
    # ...and our transition mean is the scheduler's noise-free step.
    ours = transition_mean(latents, cfg_combine(eps_u, eps_c, s), coefficients)
    torch.testing.assert_close(ours, mean_p.prev_sample, atol=1e-5, rtol=1e-5)


def test_v_prediction_reward_goes_up(sd_pipes, fast_kwargs):
    wins = 0
    for seed in range(3):
        aligner = NullTextAligner(
            sd_pipes["v_prediction"], "brightness", seed=seed, num_candidates=1, **fast_kwargs
        ).fit(PROMPT)
        wins += aligner.reward_ > aligner.score(aligner.sample_baseline(output_type="pt"))
    assert wins >= 2
