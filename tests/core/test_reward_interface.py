from __future__ import annotations

import pytest
import torch

from nulltta.rewards import (
    Brightness,
    CallableReward,
    Contrast,
    RewardInputError,
    Saturation,
    WeightedReward,
    available_rewards,
    get_reward,
    luminance,
    weighted_sum,
)


def test_image_statistics_closed_forms():
    images = torch.zeros(2, 3, 4, 4)
    images[0, 0] = 1.0  # pure red
    images[1] = 0.5  # mid gray
    torch.testing.assert_close(Brightness()(images), torch.tensor([0.299, 0.5]))
    torch.testing.assert_close(Saturation()(images), torch.tensor([1.0, 0.0]))
    half = torch.zeros(1, 3, 2, 2)
    half[..., 0] = 1.0  # left column white: luminance 1, 0 -> std 0.5
    torch.testing.assert_close(Contrast()(half), torch.tensor([0.5]))
    torch.testing.assert_close(luminance(images)[0], torch.full((4, 4), 0.299))


@pytest.mark.parametrize("reward_class", [Brightness, Saturation, Contrast])
def test_forward_keeps_the_graph_update_does_not(reward_class):
    reward = reward_class()
    images = torch.rand(3, 3, 8, 8, requires_grad=True)
    scores = reward(images)
    scores.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    reward.reset()
    reward.update(images)
    mean = reward.compute()
    assert not mean.requires_grad
    torch.testing.assert_close(mean, scores.detach().mean())


def test_forward_accumulates_like_update():
    reward = Brightness()
    a, b = torch.rand(2, 3, 4, 4), torch.rand(3, 3, 4, 4)
    reward(a)
    reward(b)
    expected = torch.cat([Brightness()(a), Brightness()(b)]).mean()
    torch.testing.assert_close(reward.compute(), expected)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.rand(3, 8, 8), "unsqueeze"),
        (torch.rand(1, 8, 8, 3), "permute"),
        (torch.rand(1, 3, 8, 8) * 2 - 1, r"\(images \+ 1\) / 2"),
        (torch.randint(0, 255, (1, 3, 8, 8)), "divide uint8"),
        ([[0.5]], "torch.Tensor"),
    ],
)
def test_bad_images_get_the_fix_in_the_message(images, match):
    with pytest.raises(RewardInputError, match=match):
        Brightness()(images)


def test_prompts_are_checked_for_prompt_rewards():
    reward = CallableReward(
        lambda images, prompts: [len(p) for p in prompts], requires_prompts=True
    )
    images = torch.rand(2, 3, 4, 4)
    with pytest.raises(RewardInputError, match="prompts="):
        reward(images)
    with pytest.raises(RewardInputError, match="2 images"):
        reward(images, ["a", "bb", "ccc"])
    torch.testing.assert_close(reward(images, ["ab", "c"]), torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(reward(images, "abc"), torch.tensor([3.0, 3.0]))


def test_callable_reward_is_a_black_box_unless_declared():
    assert not CallableReward(lambda i, p: i.mean((1, 2, 3))).is_differentiable
    assert CallableReward(lambda i, p: i.mean((1, 2, 3)), differentiable=True).is_differentiable
    with pytest.raises(TypeError, match="callable"):
        CallableReward(3)


def test_weighted_reward_is_the_weighted_sum():
    images = torch.rand(2, 3, 4, 4)
    combo = WeightedReward([(Brightness(), 0.3), (Contrast(), 0.7)])
    expected = 0.3 * Brightness()(images) + 0.7 * Contrast()(images)
    torch.testing.assert_close(combo(images), expected)
    assert combo.is_differentiable
    assert not WeightedReward([(Brightness(), 1.0), (get_reward("jpeg"), 1.0)]).is_differentiable
    torch.testing.assert_close(
        weighted_sum([torch.ones(2), torch.ones(2) * 2], [0.5, 0.25]), torch.ones(2)
    )


def test_registry_by_name_weighted_and_callable():
    assert {"brightness", "contrast", "saturation", "jpeg"} <= set(available_rewards())
    assert isinstance(get_reward("Brightness"), Brightness)
    combo = get_reward("brightness:0.25,contrast:0.75")
    assert isinstance(combo, WeightedReward) and combo.weights == [0.25, 0.75]
    reward = Brightness()
    assert get_reward(reward) is reward
    assert isinstance(get_reward(lambda i, p: i.mean((1, 2, 3))), CallableReward)
    with pytest.raises(ValueError, match="unknown reward 'nope'.*brightness"):
        get_reward("nope")
    with pytest.raises(ValueError, match="weight"):
        get_reward("brightness:heavy")
