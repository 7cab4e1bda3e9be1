from __future__ import annotations

import math

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.bench import METHOD_PRESETS, CostCounter, Task, make_method, matched_best_of_n
from nulltta.bench.das import DAS, effective_sample_size, systematic_resample
from nulltta.bench.dno import probability_regularizer, sample_from_noises
from nulltta.bench.plain import PlainSampling
from nulltta.bench.sampling import ancestral_sample, prepare
from nulltta.rewards import Brightness

PROMPT = "a red circle"
STEPS = 6  # as in conftest.py

SMALL = {
    "best-of-n": ":n=3",
    "dno": ":iterations=2:shuffles=4",
    "dno-noreg": ":iterations=2",
    "nulltta": ":n_min=1:n_max=2",
    "nulltta-fast": ":n_min=1:n_max=2",
}


@pytest.mark.parametrize("name", list(METHOD_PRESETS))
def test_every_method_returns_an_image_in_unit_range_and_is_counted(task, name):
    method = make_method(name + SMALL.get(name, ""))
    pipe = task.pipeline
    with CostCounter(pipe.unet, pipe.vae.decoder, task.reward) as counter:
        output = method.run(task)
    assert output.image.shape == (1, 3, 16, 16)
    assert 0 <= float(output.image.min()) and float(output.image.max()) <= 1
    assert counter.counts.unet_forward >= 2 * STEPS
    assert counter.counts.vae_decode >= 1
    if name in ("dno", "dno-noreg", "das", "nulltta", "nulltta-fast"):
        assert counter.counts.unet_backward > 0 and counter.counts.reward_calls > 0
    if name == "plain":
        assert counter.counts.as_dict() == {
            "unet_forward": 2 * STEPS,
            "unet_backward": 0,
            "vae_decode": 1,
            "vae_backward": 0,
            "reward_calls": 0,
        }


def test_plain_equals_the_aligners_baseline(task):
    ours = PlainSampling().run(task).image
    aligner = NullTextAligner(task.pipeline, "brightness", num_inference_steps=STEPS, seed=0)
    reference = aligner.sample_baseline(PROMPT, output_type="pt")
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_best_of_n_keeps_the_best_draw(task):
    prepared = prepare(task)
    scores = []
    for index in range(4):
        latents = ancestral_sample(prepared, task.generator(index))
        with torch.no_grad():
            scores.append(float(task.reward(prepared.adapter.decode(latents))[0]))
    output = make_method("best-of-n:n=4").run(task)
    assert output.info["chosen_draw"] == max(range(4), key=scores.__getitem__)
    assert float(task.reward(output.image)[0]) == pytest.approx(max(scores), abs=1e-6)
    assert len(set(scores)) == 4  # the draws really differ


def test_matched_best_of_n_counts_the_schedule():
    # T = 10, n_i = 2 everywhere, K = 3: 10 * (2 + 6) + 2 * 20 = 120 passes = 6 plain samples
    assert matched_best_of_n(10, 2, 2, 0.008, 3) == 6


def test_dno_gradient_reaches_every_noise(task):
    prepared = prepare(task)
    shape = prepared.latent_shape(1)
    noises = torch.randn((STEPS + 1, *shape[1:]), generator=torch.Generator().manual_seed(1))
    grads = []
    for use_checkpoint in (True, False):
        leaf = noises.clone().requires_grad_(True)
        with prepared.adapter.frozen():
            image = prepared.adapter.decode(sample_from_noises(prepared, leaf, use_checkpoint))
            task.reward(image).sum().backward()
        grads.append(leaf.grad)
    per_noise = grads[0].flatten(1).norm(dim=1)
    assert (per_noise > 0).all()  # x_T and every step's noise
    torch.testing.assert_close(grads[0], grads[1])  # checkpointing changes nothing


def test_dno_without_iterations_is_plain_sampling(task):
    dno = make_method("dno:iterations=0").run(task).image
    torch.testing.assert_close(dno, PlainSampling().run(task).image, atol=1e-6, rtol=0)


def test_dno_improves_the_target_reward(task):
    output = make_method("dno-noreg:iterations=3:learning_rate=0.1").run(task)
    rewards = output.info["iteration_rewards"]
    assert rewards[-1] > rewards[0]


def test_probability_regularizer_is_minimal_on_gaussian_noise():
    noise = torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    assert float(probability_regularizer(noise, 4, 8, generator)) == pytest.approx(4 * math.log(2))
    scaled = (2 * noise).requires_grad_(True)
    penalty = probability_regularizer(scaled, 4, 8, generator)
    assert float(penalty.detach()) > 100
    penalty.backward()
    assert scaled.grad.abs().sum() > 0


def test_effective_sample_size_closed_forms():
    assert effective_sample_size(torch.zeros(4)) == pytest.approx(4)
    assert effective_sample_size(torch.tensor([0.0, -math.inf, -math.inf, -math.inf])) == 1
    weights = torch.tensor([0.5, 0.25, 0.25, 1e-30])
    assert effective_sample_size(weights.log() + 3.0) == pytest.approx(1 / 0.375)


def test_systematic_resampling_gives_floor_or_ceil_copies():
    weights = torch.tensor([0.5, 0.25, 0.25, 0.0])
    for seed in range(20):
        index = systematic_resample(weights, torch.Generator().manual_seed(seed))
        assert torch.bincount(index, minlength=4).tolist() == [2, 1, 1, 0]
    weights = [0.6, 0.3, 0.1]
    for seed in range(20):
        index = systematic_resample(torch.tensor(weights), torch.Generator().manual_seed(seed))
        counts = torch.bincount(index, minlength=3).tolist()
        assert all(
            math.floor(3 * w) <= c <= math.ceil(3 * w) for w, c in zip(weights, counts, strict=True)
        )
        assert sum(counts) == 3


def test_das_resamples_only_when_the_reward_dominates(tiny_pipe):
    strong = Task(tiny_pipe, PROMPT, 0, Brightness(), num_inference_steps=STEPS)
    assert DAS(kl_coeff=1e-4, tempering_rate=1.0).run(strong).info["resamplings"] > 0
    assert DAS(kl_coeff=1e6, tempering_rate=1.0).run(strong).info["resamplings"] == 0
