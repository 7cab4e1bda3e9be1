from __future__ import annotations

import pytest
import torch

from nulltta.rewards import Reward, available_rewards, get_reward
from nulltta.shapes.rewards import ShapesFD, fidelity_accuracy
from nulltta.shapes.world import PromptError, sample_batch

from .conftest import spearman

REWARDS = ["shapes-fidelity", "shapes-preference", "shapes-preference-heldout", "shapes-manifold"]


def test_rewards_are_registered() -> None:
    assert set(REWARDS) <= set(available_rewards())
    for name in REWARDS:
        reward = get_reward(name)
        assert isinstance(reward, Reward) and reward.is_differentiable
    assert get_reward("shapes-fidelity").requires_prompts


def test_classifier_accuracy_on_fresh_clean_data(clean_batch) -> None:
    acc = fidelity_accuracy(clean_batch.images, clean_batch.prompts)
    assert acc.mean() >= 0.98


def test_classifier_rejects_wrong_prompts(clean_batch) -> None:
    images = clean_batch.images[:100]
    shifted = clean_batch.prompts[1:101]
    wrong = [p != q for p, q in zip(clean_batch.prompts[:100], shifted, strict=True)]
    acc = fidelity_accuracy(images, shifted)
    assert acc[torch.tensor(wrong)].mean() < 0.05


@pytest.mark.parametrize("name", ["shapes-preference", "shapes-preference-heldout"])
def test_preference_models_rank_like_the_ground_truth(name: str, clean_batch) -> None:
    with torch.no_grad():
        scores = get_reward(name)(clean_batch.images)
    assert spearman(scores, clean_batch.preference()) > 0.9


def test_preference_models_are_different_models(clean_batch) -> None:
    images = clean_batch.images[:64]
    with torch.no_grad():
        a = get_reward("shapes-preference")(images)
        b = get_reward("shapes-preference-heldout")(images)
    assert not torch.allclose(a, b, atol=1e-3)
    assert spearman(a, b) > 0.8


def test_fidelity_reward_prefers_the_right_prompt(small_batch) -> None:
    reward = get_reward("shapes-fidelity")
    with torch.no_grad():
        right = reward(small_batch.images, small_batch.prompts)
        wrong = reward(small_batch.images, small_batch.prompts[1:] + small_batch.prompts[:1])
    assert (right > 0.9).all()
    assert right.mean() > wrong.mean() + 0.5
    with pytest.raises(PromptError, match="magenta"):
        reward(small_batch.images, "a photo of a cat")


@pytest.mark.parametrize("name", REWARDS)
@pytest.mark.parametrize("size", [32, 64])
def test_gradients_reach_the_images(name: str, size: int, small_batch) -> None:
    images = torch.nn.functional.interpolate(small_batch.images, size=(size, size))
    images = images.detach().requires_grad_(True)
    scores = get_reward(name)(images, small_batch.prompts)
    assert scores.shape == (8,) and torch.isfinite(scores).all()
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
