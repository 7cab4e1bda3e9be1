"""Properties every reward must have: gradients, no-graph updates, frozen eval models, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from nulltta.rewards import (
    Aesthetic,
    CallableReward,
    CLIPScore,
    HPSv2,
    ImageReward,
    JpegCompressibility,
    PickScore,
    RewardInputError,
    WeightedReward,
    available_rewards,
    get_reward,
    jpeg_size_kb,
)

PROMPTS = ["a photo of a cat", "a red house with a tree"]
LEARNED = ["pickscore", "clipscore", "hpsv2", "aesthetic", "imagereward"]


@pytest.fixture
def build(tiny_clip, clip_tokenizer, tiny_open_clip, open_clip_arch, aesthetic_head,
          tiny_imagereward, bert_tokenizer):
    def make(name: str):
        if name == "pickscore":
            return PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
        if name == "clipscore":
            return CLIPScore(model=tiny_clip, tokenizer=clip_tokenizer)
        if name == "hpsv2":
            return HPSv2(model=tiny_open_clip, arch=open_clip_arch)
        if name == "aesthetic":
            return Aesthetic(head=aesthetic_head, clip_model=tiny_clip)
        return ImageReward(model=tiny_imagereward, tokenizer=bert_tokenizer)

    return make


@pytest.mark.parametrize("name", LEARNED)
def test_gradients_reach_the_input_image(build, name):
    reward = build(name)
    assert reward.is_differentiable and reward.higher_is_better
    # 48x40 images exercise the resize (and crop or pad) in the graph.
    images = (0.25 + 0.5 * torch.rand(2, 3, 48, 40)).requires_grad_()
    scores = reward(images, PROMPTS)
    assert scores.shape == (2,) and scores.dtype == torch.float32
    assert scores.requires_grad
    scores.sum().backward()
    grad = images.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in reward.parameters())


@pytest.mark.parametrize("name", LEARNED)
def test_update_and_compute_build_no_graph(build, name, images):
    reward = build(name)
    seen = []
    score = reward.score

    def spy(imgs, prompts):
        seen.append(torch.is_grad_enabled())
        return score(imgs, prompts)

    reward.score = spy
    images = images.requires_grad_()
    reward.update(images, PROMPTS)
    reward.update(images, PROMPTS)
    mean = reward.compute()
    assert seen == [False, False]
    assert mean.grad_fn is None and images.grad is None
    expected = score(images.detach(), PROMPTS).mean()
    torch.testing.assert_close(mean, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LEARNED)
def test_models_stay_frozen_and_in_eval_mode(build, name, images):
    reward = build(name)
    before = reward(images, PROMPTS)
    reward.train()
    assert reward.training
    assert not any(m.training for m in reward.modules() if m is not reward)
    assert not any(p.requires_grad for p in reward.parameters())
    torch.testing.assert_close(reward(images, PROMPTS), before)  # dropouts stay off
    reward.eval()
    assert not reward.training


@pytest.mark.parametrize("name", LEARNED)
def test_wrong_image_range_or_shape_is_rejected(build, name, images):
    reward = build(name)
    with pytest.raises(RewardInputError, match=r"\[0, 1\]"):
        reward(images * 255, PROMPTS)
    with pytest.raises(RewardInputError, match="batched"):
        reward(images[0], PROMPTS)
    with pytest.raises(RewardInputError, match=r"\(B, 3, H, W\)"):
        reward(images[:, :1], PROMPTS)
    with pytest.raises(RewardInputError, match="prompts"):
        reward(images, PROMPTS * 2)


def test_registry_names_and_unknown_name():
    assert set(LEARNED + ["hpsv2.1", "jpeg"]) <= set(available_rewards())
    with pytest.raises(ValueError, match="unknown reward 'pickscor'.*pickscore"):
        get_reward("pickscor")


def test_weighted_combination_of_learned_rewards_and_callables(build, images):
    pick, hps = build("pickscore"), build("hpsv2")
    w = 0.3
    combo = WeightedReward([(pick, w), (hps, 1 - w)])
    assert combo.is_differentiable and combo.requires_prompts
    expected = w * pick(images, PROMPTS) + (1 - w) * hps(images, PROMPTS)
    torch.testing.assert_close(combo(images, PROMPTS), expected)
    brightness = get_reward(lambda imgs, prompts: imgs.mean(dim=(1, 2, 3)))
    assert isinstance(brightness, CallableReward) and not brightness.is_differentiable
    mixed = WeightedReward([(pick, 1.0), (brightness, 2.0), (get_reward("jpeg"), 0.5)])
    assert not mixed.is_differentiable
    kilobytes = torch.tensor(_jpeg_kilobytes(images))
    expected = pick(images, PROMPTS) + 2.0 * images.mean(dim=(1, 2, 3)) - 0.5 * kilobytes
    torch.testing.assert_close(mixed(images, PROMPTS), expected)


def test_weighted_names_resolve_learned_rewards(use_weights_dir, open_clip_arch, images, build):
    combo = get_reward("pickscore:0.5,aesthetic:0.5")
    assert isinstance(combo, WeightedReward) and combo.weights == [0.5, 0.5]
    expected = 0.5 * build("pickscore")(images, PROMPTS) + 0.5 * build("aesthetic")(images)
    torch.testing.assert_close(combo(images, PROMPTS), expected)


# ---------------------------------------------------------------- JPEG compressibility
def _jpeg_kilobytes(images):
    """PIL's JPEG size at quality 95 of each uint8-quantised image, in kB (1000 bytes)."""
    sizes = []
    for image in images:
        array = (image.detach().permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=95)
        sizes.append(len(buffer.getvalue()) / 1000)
    return sizes


def test_jpeg_is_minus_kilobytes_at_quality_95_and_not_differentiable(images):
    reward = get_reward("jpeg")
    assert isinstance(reward, JpegCompressibility)
    assert reward.quality == 95 and reward.is_differentiable is False
    expected = [-kb for kb in _jpeg_kilobytes(images)]
    scores = reward(images.requires_grad_())
    torch.testing.assert_close(scores, torch.tensor(expected))
    assert not scores.requires_grad
    torch.testing.assert_close(jpeg_size_kb(images), -scores)


def test_jpeg_prefers_flat_images_and_checks_quality():
    flat = torch.full((1, 3, 64, 64), 0.5)
    noise = torch.rand(1, 3, 64, 64)
    reward = JpegCompressibility()
    assert reward(flat) > reward(noise)
    assert JpegCompressibility(quality=50)(noise) > reward(noise)
    with pytest.raises(ValueError, match="quality"):
        JpegCompressibility(quality=0)
