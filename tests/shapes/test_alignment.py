"""Null-TTA on the embedded model: the target reward rises over plain sampling."""

from __future__ import annotations

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.loading import embedded_model_available
from nulltta.shapes.world import PromptError

pytestmark = pytest.mark.skipif(not embedded_model_available(), reason="no embedded model")

@pytest.fixture(scope="module")
def shared_pipe():
    from nulltta.shapes.model import load_embedded_pipeline

    return load_embedded_pipeline()


@pytest.mark.xfail(
    strict=True,
    reason="model version 2.1 with its defaults (versions 2 and 3 of the rule): gold "
    "-0.015 +- 0.055 against plain on these 16 pairs (target +0.039 +- 0.016), "
    "+0.019 +- 0.024 on the main table's 48 (docs/concepts/shapesbench-results.md); a known "
    "miss of the design's test, and it starts passing when the method gains here. Why "
    "(Parts G and H): the null branch places the shape when the gradient asks, and the "
    "proxy's gradient on the estimates of the steps that decide position asks for centring "
    "on 45-71% of images, against 84% on final images",
)
def test_alignment_raises_gold_and_the_target_over_plain_sampling(shared_pipe):
    # The benchmark's sampler and budget on 8 prompts x 2 seeds, in one batch;
    # plain sampling is the same fit with no inner steps and no selection.
    # Gold is never optimised: it rises only if the target's rise is real.
    from nulltta.bench.base import compressed_rate
    from nulltta.bench.shapesbench import shapesbench_prompts
    from nulltta.images import to_tensor
    from nulltta.rewards import get_reward

    pairs = [(prompt, seed) for prompt in shapesbench_prompts(8) for seed in (0, 1)]
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    schedule = {"num_inference_steps": 20, "schedule_rate": compressed_rate(20)}
    aligned = NullTextAligner(shared_pipe, batch_size=16, **schedule).fit(prompts, seeds=seeds)
    plain = NullTextAligner(
        shared_pipe, n_min=0, n_max=0, num_candidates=1, select_initial_noise=False,
        batch_size=16, **schedule,
    ).fit(prompts, seeds=seeds)  # fmt: skip

    def mean(reward: str, fit: NullTextAligner) -> float:
        images = torch.cat([to_tensor(image) for image in fit.images_])
        return float(get_reward(reward)(images, prompts).mean())

    assert mean("shapes-gold", aligned) > mean("shapes-gold", plain) + 0.05
    assert mean("shapes-preference", aligned) > mean("shapes-preference", plain) + 0.02


def test_default_reward_of_the_embedded_model_is_the_target_preference():
    aligner = NullTextAligner(num_inference_steps=2, n_min=0, n_max=1, num_candidates=1)
    aligner.fit("a red circle on a white background")
    assert (
        type(aligner.reward_fn_).__name__
        == type(__import__("nulltta").get_reward("shapes-preference")).__name__
    )
    assert torch.is_tensor(aligner.phi_)


def test_prompts_outside_the_vocabulary_raise_with_the_vocabulary():
    aligner = NullTextAligner(num_inference_steps=2, n_min=0, n_max=1, num_candidates=1)
    with pytest.raises(PromptError, match="circle"):
        aligner.fit("a purple hexagon on a white background")
    # Optional caption words are part of the vocabulary.
    aligner.fit("a large red circle in the centre on a white background")


def test_model_defaults_fill_only_what_the_user_left_none(shared_pipe):
    from nulltta.shapes.profile import ALIGNMENT_DEFAULTS

    fast = {"num_inference_steps": 2, "n_min": 0, "n_max": 1, "num_candidates": 1}
    embedded = NullTextAligner(shared_pipe, "shapes-preference", **fast).fit(
        "a red circle on a white background"
    )
    assert embedded.get_params()["kl_weight"] is None  # the parameter stays as given
    for name, value in ALIGNMENT_DEFAULTS.items():
        assert getattr(embedded.config_, name) == value
    chosen = NullTextAligner(
        shared_pipe,
        "shapes-preference",
        kl_weight=0.002,
        anneal_kl=True,
        guidance_scale=3.0,
        **fast,
    ).fit("a red circle on a white background")
    assert (chosen.config_.kl_weight, chosen.config_.anneal_kl) == (0.002, True)
    assert chosen.config_.guidance_scale == 3.0


def test_release_defaults_on_other_models(tiny_pipe_for_defaults):
    aligner = NullTextAligner(
        tiny_pipe_for_defaults, "brightness", num_inference_steps=2, n_min=0, n_max=1
    ).fit("a red circle")
    assert (aligner.config_.kl_weight, aligner.config_.anneal_kl) == (0.002, True)
    assert aligner.config_.guidance_scale == 7.5


@pytest.fixture
def tiny_pipe_for_defaults():
    from nulltta.testing import tiny_stable_diffusion_pipeline

    return tiny_stable_diffusion_pipeline()


def test_annealing_follows_the_resolved_setting(shared_pipe):
    from nulltta.equations import annealing_schedule

    fast = {"num_inference_steps": 2, "n_min": 0, "n_max": 1, "num_candidates": 1}
    default = NullTextAligner(shared_pipe, "shapes-preference", **fast)
    release = NullTextAligner(shared_pipe, "shapes-preference", anneal_kl=True, **fast)
    default.fit("a red circle on a white background")
    release.fit("a red circle on a white background")
    assert default.history_[:, "kl_scale"] == [1.0, 1.0]
    expected = annealing_schedule(2, default.config_.schedule_rate)
    assert release.history_[:, "kl_scale"] == pytest.approx(list(expected))
