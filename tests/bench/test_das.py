"""DAS against the authors' sampler, piece by piece (docs/concepts/baselines.md).

Each test pins one thing the official SMC sampler does (``../shared/anchors/das``),
as a closed form, an invariant or a reference computation, so that CI needs
no copy of it.
"""

from __future__ import annotations

import math

import pytest
import torch

import nulltta.bench.das as das_module
from nulltta.bench import Task
from nulltta.bench.das import DAS, resample, ssp_counts, ssp_resample, tempering
from nulltta.bench.sampling import prepare
from nulltta.rewards import Brightness

PROMPT = "a red circle"
STEPS = 6  # as in conftest.py


# --- SSP resampling (the authors' default scheme) ---------------------------


def test_ssp_counts_closed_forms():
    # Integer expectations leave nothing to chance.
    assert ssp_counts([2.0, 0.0, 1.0, 1.0], [0.3, 0.7, 0.9]) == [2, 0, 1, 1]
    # a + b = 1: the second particle reaches 1 when u < (1 - a) / (2 - a - b) = 0.5.
    assert ssp_counts([0.5, 1.5], [0.2]) == [0, 2]
    assert ssp_counts([0.5, 1.5], [0.8]) == [1, 1]
    # a + b < 1: the second takes the pair's 0.4 when u < b / (a + b) = 0.75; the
    # holder then meets 0.6, and keeps the child when u >= (1 - 0.4) / (2 - 1) = 0.6.
    assert ssp_counts([0.1, 0.3, 2.6], [0.5, 0.9]) == [0, 1, 2]
    assert ssp_counts([0.1, 0.3, 2.6], [0.9, 0.9]) == [1, 0, 2]
    assert ssp_counts([0.1, 0.3, 2.6], [0.9, 0.1]) == [0, 0, 3]


def test_ssp_counts_are_floor_or_ceil_and_unbiased():
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(8, generator=generator) ** 3
    expected = (8 * weights / weights.sum()).tolist()
    draws = 4000
    total = torch.zeros(8, dtype=torch.float64)
    for seed in range(draws):
        index = ssp_resample(weights, torch.Generator().manual_seed(seed))
        counts = torch.bincount(index, minlength=8)
        assert int(counts.sum()) == 8
        for count, m in zip(counts.tolist(), expected, strict=True):
            assert math.floor(m) <= count <= math.ceil(m)
        total += counts
    # Each count is floor(m) + Bernoulli(frac(m)): its mean's SE is below 0.5 / sqrt(draws).
    assert torch.allclose(total / draws, torch.tensor(expected, dtype=torch.float64), atol=0.04)


def test_resample_rejects_an_unknown_scheme():
    with pytest.raises(ValueError, match="ssp"):
        resample(torch.ones(3), "stratified")
    with pytest.raises(ValueError, match="ssp"):
        DAS(resampling="stratified").run(None)  # type: ignore[arg-type]


def test_das_resamples_with_ssp_by_default(task, monkeypatch):
    calls = []
    original = das_module.ssp_resample

    def spy(weights, generator=None):
        calls.append(weights)
        return original(weights, generator)

    monkeypatch.setattr(das_module, "ssp_resample", spy)
    assert DAS().resampling == "ssp"
    output = DAS(kl_coeff=1e-4, tempering_rate=1.0).run(task)
    assert output.info["resamplings"] == len(calls) > 0


# --- weights, tempering and the proposal --------------------------------------


def test_log_p_over_q_matches_gaussian_log_densities():
    generator = torch.Generator().manual_seed(0)
    mean, shift, noise = (torch.randn(3, 4, 2, 2, generator=generator) for _ in range(3))
    variance = 0.3
    sample = mean + shift + variance**0.5 * noise
    prior = torch.distributions.Normal(mean, variance**0.5).log_prob(sample).flatten(1).sum(1)
    proposal = torch.distributions.Normal(mean + shift, variance**0.5).log_prob(sample)
    expected = prior - proposal.flatten(1).sum(1)
    actual = das_module._log_p_over_q(sample, mean, shift, variance)
    assert torch.allclose(actual, expected, atol=1e-4)


def test_tempering_closed_form():
    assert tempering(0, 0.5) == 0.0
    assert tempering(1, 0.5) == pytest.approx(0.5)
    assert tempering(2, 0.5) == 1.0  # 1.5^2 - 1 = 1.25, capped
    assert tempering(3, 0.008) == pytest.approx(1.008**3 - 1)


class _Spy:
    """Records what one DAS run computes at each step (look-ahead, resampling, proposal)."""

    def __init__(self, monkeypatch):
        self.look_aheads, self.indices, self.proposals = [], [], []
        look_ahead, do_resample, log_p_over_q = (
            DAS._look_ahead,
            das_module.resample,
            das_module._log_p_over_q,
        )

        def spy_look_ahead(method, task, prepared, latents, step_index):
            result = look_ahead(method, task, prepared, latents, step_index)
            self.look_aheads.append(result)
            self.indices.append(None)
            return result

        def spy_resample(weights, scheme, generator=None):
            self.indices[-1] = do_resample(weights, scheme, generator)
            return self.indices[-1]

        def spy_log_p_over_q(sample, mean, shift, variance):
            out = log_p_over_q(sample, mean, shift, variance)
            self.proposals.append((sample.clone(), shift.clone(), out.clone()))
            return out

        monkeypatch.setattr(DAS, "_look_ahead", spy_look_ahead)
        monkeypatch.setattr(das_module, "resample", spy_resample)
        monkeypatch.setattr(das_module, "_log_p_over_q", spy_log_p_over_q)


def test_final_weights_are_the_path_ratio_times_the_untempered_final_twist(task, monkeypatch):
    # Without resampling the intermediate twists telescope away:
    # log w = sum_t log p/q + R(x0) / alpha (the official sampler's weights, eq. 14).
    spy = _Spy(monkeypatch)
    kl_coeff = 0.05
    output = DAS(kl_coeff=kl_coeff, tempering_rate=0.5, ess_threshold=0.0).run(task)
    assert output.info["resamplings"] == 0
    final_latents = spy.proposals[-1][0]
    with torch.no_grad():
        images = prepare(task).adapter.decode(final_latents)
        final = task.reward(images, [task.prompt]) / kl_coeff
    log_w = sum(p[2] for p in spy.proposals) + final
    assert torch.allclose(torch.tensor(output.info["final_weights"]), torch.softmax(log_w, 0))
    best = int(torch.argmax(log_w))
    assert torch.allclose(output.image, images[best : best + 1], atol=1e-5)


@pytest.mark.parametrize("carry_twists", [True, False])
def test_proposal_shift_is_variance_times_next_temperature_times_gradient(
    task, monkeypatch, carry_twists
):
    # The official proposal: x_{t-1} = mu + sigma_t^2 lambda_{i+1} grad(R / alpha) + sigma_t z.
    # The gradient is the resampled particle's own (carry_twists=True) or, as in
    # the authors' code, the one left in the slot (carry_twists=False).
    spy = _Spy(monkeypatch)
    rate = 0.3
    method = DAS(kl_coeff=1e-4, tempering_rate=rate, carry_twists=carry_twists)
    output = method.run(task)
    assert output.info["resamplings"] > 0
    coefficients = prepare(task).coefficients
    moved = False
    for i, ((_, _, gradient), index, (_, shift, _)) in enumerate(
        zip(spy.look_aheads, spy.indices, spy.proposals, strict=True)
    ):
        if index is not None and carry_twists:
            gradient = gradient[index]
        moved |= index is not None and not torch.equal(index, torch.arange(len(index)))
        expected = coefficients[i].std ** 2 * tempering(i + 1, rate) * gradient
        assert torch.allclose(shift, expected, rtol=1e-5, atol=1e-7)
    assert moved


def test_resampled_slots_keep_their_twists_by_default_as_the_authors_code(task):
    # The authors' sampler re-indexes latents and eps but not the twist or the
    # reward gradient; the default follows it, carry_twists=True is exact SMC.
    assert DAS().carry_twists is False
    calm = {"kl_coeff": 1e6, "tempering_rate": 1.0}
    a = DAS(**calm).run(task)
    b = DAS(**calm, carry_twists=True).run(task)
    assert a.info["resamplings"] == 0 and torch.equal(a.image, b.image)
    strong = {"kl_coeff": 1e-4, "tempering_rate": 1.0}
    c = DAS(**strong).run(task)
    d = DAS(**strong, carry_twists=True).run(task)
    assert c.info["resamplings"] > 0
    assert c.info["final_weights"] != d.info["final_weights"]


# --- when resampling happens --------------------------------------------------


def test_resampling_is_triggered_by_the_ess_threshold(tiny_pipe):
    task = Task(tiny_pipe, PROMPT, 0, Brightness(), num_inference_steps=STEPS)
    # ESS <= N always, so a threshold above 1 resamples at every step (as the
    # official `ess < N * threshold`), and 0 never does.
    assert DAS(kl_coeff=1e6, ess_threshold=1.01).run(task).info["resamplings"] == STEPS
    assert DAS(kl_coeff=1e-4, ess_threshold=0.0).run(task).info["resamplings"] == 0


def test_a_zero_tempering_rate_switches_the_twist_off(task):
    # gamma = 0 keeps lambda_t = 0: no twist, no shift, equal weights until the end.
    # (It used to be read as "unset" and replaced by the compressed default.)
    output = DAS(kl_coeff=1e-4, tempering_rate=0.0).run(task)
    assert output.info["resamplings"] == 0
