from __future__ import annotations

import numpy as np
import pytest
import torch

from nulltta.rewards import Reward, available_rewards, get_reward
from nulltta.shapes.gold import gold_score
from nulltta.shapes.rewards import ShapesFD, attribute_matches, fidelity_accuracy
from nulltta.shapes.scorers import prompt_labels
from nulltta.shapes.train_preference import make_pairs
from nulltta.shapes.world import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    PromptError,
    make_prompt,
    render_batch,
    sample_attributes,
    sample_batch,
)

from .conftest import spearman

DIFFERENTIABLE = [
    "shapes-fidelity",
    "shapes-preference",
    "shapes-preference-heldout",
    "shapes-manifold",
]
PROXIES = ["shapes-preference", "shapes-preference-heldout"]
PROMPTS = [
    "a red circle on a white background",
    "a cyan triangle on a black background",
    "a yellow cross on a gray background",
    "a magenta square on a brown background",
]


def _images_for(prompt: str, seed: int, n: int = 40) -> torch.Tensor:
    """``n`` clean images rendered for ``prompt``, geometry from the base distribution."""
    attrs = sample_attributes(n, np.random.default_rng(100 + seed))
    attrs["shape"], attrs["color"], attrs["background"] = (
        np.full(n, index) for index in prompt_labels([prompt])[0].tolist()
    )
    return torch.from_numpy(render_batch(**attrs))


def _one_attribute_changed(prompts: list[str], step: int) -> list[str]:
    """Each prompt with its colour (step 0), shape (1) or background (2) changed."""
    from nulltta.shapes.world import parse_prompt

    out = []
    for i, prompt in enumerate(prompts):
        shape, color, background = parse_prompt(prompt)
        which = (i + step) % 3
        if which == 0:
            color = COLORS[(COLORS.index(color) + 1 + i % 5) % 6]
        elif which == 1:
            shape = SHAPES[(SHAPES.index(shape) + 1 + i % 3) % 4]
        else:
            background = BACKGROUNDS[(BACKGROUNDS.index(background) + 1 + i % 3) % 4]
        out.append(make_prompt(shape, color, background))
    return out


def test_rewards_are_registered() -> None:
    assert {*DIFFERENTIABLE, "shapes-gold"} <= set(available_rewards())
    for name in DIFFERENTIABLE:
        reward = get_reward(name)
        assert isinstance(reward, Reward) and reward.is_differentiable
    for name in ["shapes-fidelity", *PROXIES, "shapes-gold"]:
        assert get_reward(name).requires_prompts, name


def test_classifier_accuracy_on_fresh_clean_data(clean_batch) -> None:
    acc = fidelity_accuracy(clean_batch.images, clean_batch.prompts)
    assert acc.mean() >= 0.98


def test_classifier_rejects_wrong_prompts(clean_batch) -> None:
    images = clean_batch.images[:100]
    shifted = clean_batch.prompts[1:101]
    wrong = [p != q for p, q in zip(clean_batch.prompts[:100], shifted, strict=True)]
    acc = fidelity_accuracy(images, shifted)
    assert acc[torch.tensor(wrong)].mean() < 0.05


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_prefers_the_matching_prompt_for_the_same_image(name: str, clean_batch) -> None:
    images, prompts = clean_batch.images[:200], clean_batch.prompts[:200]
    reward = get_reward(name)
    with torch.no_grad():
        right = reward(images, prompts)
        wrong = reward(images, _one_attribute_changed(prompts, step=0))
        wrong_shape = reward(images, _one_attribute_changed(prompts, step=1))
    assert (right > wrong_shape).float().mean() > 0.75
    # Scores under two prompts carry two per-prompt offsets, so this is a
    # clear majority rather than every image (measured: metrics in the card).
    assert (right > wrong).float().mean() > 0.75
    assert right.mean() > wrong.mean() + 0.05


@pytest.mark.parametrize("name", PROXIES)
def test_proxies_rank_images_of_one_prompt_like_the_gold_reward(name: str) -> None:
    # Bradley-Terry pairs share a prompt, so a proxy's scores are comparable
    # within a prompt (each prompt keeps its own offset: see the scorer card).
    reward = get_reward(name)
    correlations = []
    for seed, prompt in enumerate(PROMPTS):
        images = _images_for(prompt, seed)
        with torch.no_grad():
            scores = reward(images, prompt)
        correlations.append(spearman(scores, gold_score(images, [prompt] * 40)))
    assert min(correlations) > 0.6 and sum(correlations) / len(correlations) > 0.8


@pytest.mark.parametrize("name", PROXIES)
def test_calibration_matches_gold_on_average_over_fresh_pairs(name: str) -> None:
    # A least-squares affine fit with an intercept has mean residual zero on
    # its training images; fresh images from the same pair distribution keep it.
    pairs = make_pairs(300, seed=31, chunk=300)
    images = torch.cat([pairs.images_a, pairs.images_b])
    prompts = [
        make_prompt(SHAPES[s], COLORS[c], BACKGROUNDS[b]) for s, c, b in pairs.labels.tolist()
    ]
    with torch.no_grad():
        scores = get_reward(name)(images, prompts * 2)
    gold = torch.cat([pairs.gold_a, pairs.gold_b])
    assert float(scores.mean()) == pytest.approx(float(gold.mean()), abs=0.03)


def test_proxies_are_different_models_that_agree_within_a_prompt() -> None:
    target, heldout = get_reward("shapes-preference"), get_reward("shapes-preference-heldout")
    for seed, prompt in enumerate(PROMPTS):
        images = _images_for(prompt, seed)
        with torch.no_grad():
            a, b = target(images, prompt), heldout(images, prompt)
        assert not torch.allclose(a, b, atol=1e-3)
        assert spearman(a, b) > 0.7, prompt


def test_fidelity_reward_prefers_the_right_prompt(small_batch) -> None:
    reward = get_reward("shapes-fidelity")
    with torch.no_grad():
        right = reward(small_batch.images, small_batch.prompts)
        wrong = reward(small_batch.images, small_batch.prompts[1:] + small_batch.prompts[:1])
    assert (right > 0.9).all()
    assert right.mean() > wrong.mean() + 0.5
    with pytest.raises(PromptError, match="magenta"):
        reward(small_batch.images, "a photo of a cat")


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@pytest.mark.parametrize("size", [32, 64])
def test_gradients_reach_the_images(name: str, size: int, small_batch) -> None:
    images = torch.nn.functional.interpolate(small_batch.images, size=(size, size))
    images = images.detach().requires_grad_(True)
    scores = get_reward(name)(images, small_batch.prompts)
    assert scores.shape == (8,)
    scores.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_manifold_score_flags_off_manifold_images(clean_batch) -> None:
    reward = get_reward("shapes-manifold")
    with torch.no_grad():
        clean = reward(clean_batch.images[:64])
        noisy = reward(torch.rand(64, 3, 32, 32))
    assert noisy.mean() < clean.mean() - 1


def test_fd_separates_clean_from_hacked(clean_batch) -> None:
    clean = ShapesFD()
    clean.update(clean_batch.images[:200])
    hacked = ShapesFD()
    images = sample_batch(200, seed=5).images
    hacked.update((images + 0.3 * torch.randn_like(images)).clamp(0, 1))
    assert 0 <= clean.compute() < hacked.compute() / 3
    with pytest.raises(ValueError, match="at least two"):
        ShapesFD().compute()


def test_attribute_matches_flags_exactly_the_attribute_a_prompt_gets_wrong():
    batch = sample_batch(16, seed=7)
    right = attribute_matches(batch.images, batch.prompts)
    assert right.shape == (3, 16) and bool(right.all())
    wrong_colour = [
        p.replace(p.split()[1], "red" if p.split()[1] != "red" else "blue", 1)
        for p in batch.prompts
    ]
    flipped = attribute_matches(batch.images, wrong_colour)
    assert bool(flipped[0].all()) and not bool(flipped[1].any()) and bool(flipped[2].all())
    torch.testing.assert_close(
        fidelity_accuracy(batch.images, wrong_colour), flipped.all(0).float()
    )
