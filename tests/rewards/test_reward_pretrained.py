"""Helpers shared by the learned rewards: dtypes, repo ids, CLIP feature access, preprocessing."""

from __future__ import annotations

import copy

import pytest
import torch

from nulltta.rewards import Aesthetic
from nulltta.rewards.preprocess import normalize, resize_longest_side_pad
from nulltta.rewards.pretrained import (
    PretrainedReward,
    as_dtype,
    clip_image_features,
    clip_image_size,
    is_repo_id,
    transformers_dtype_kwargs,
)


def test_as_dtype_reads_names_and_rejects_unknown_ones():
    assert as_dtype("fp16") is torch.float16 and as_dtype("torch.bfloat16") is torch.bfloat16
    assert as_dtype(torch.float32) is torch.float32 and as_dtype(None) is None
    with pytest.raises(ValueError, match="unknown dtype"):
        as_dtype("int8")


def test_transformers_dtype_keyword_matches_the_installed_version():
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    assert transformers_dtype_kwargs(torch.float16) == {key: torch.float16}


def test_is_repo_id(tmp_path, monkeypatch):
    assert is_repo_id("yuvalkirstain/PickScore_v1")
    assert not is_repo_id("not a repo") and not is_repo_id(None) and not is_repo_id("name")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert not is_repo_id("org/model")  # an existing folder is a path


def test_vision_only_clip_gives_the_same_features(tiny_clip, aesthetic_head, images):
    from transformers import CLIPVisionModelWithProjection

    config = copy.deepcopy(tiny_clip.config.vision_config)
    config.projection_dim = tiny_clip.config.projection_dim
    vision = CLIPVisionModelWithProjection(config).eval()
    state = {k: v for k, v in tiny_clip.state_dict().items()
             if k.startswith(("vision_model.", "visual_projection."))}
    vision.load_state_dict(state)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clip_image_features(vision, pixels),
                                   clip_image_features(tiny_clip, pixels))
    assert clip_image_size(vision) == clip_image_size(tiny_clip) == 32
    shared = Aesthetic(head=aesthetic_head, clip_model=tiny_clip)
    torch.testing.assert_close(Aesthetic(head=aesthetic_head, clip_model=vision)(images),
                               shared(images))


def test_prepare_images_modes_cast_and_errors(tiny_clip):
    reward = PretrainedReward(torch.nn.Linear(2, 2), dtype="bf16")
    images = torch.rand(1, 3, 40, 20)
    pixels = reward.prepare_images(images, 32, mode="pad")
    assert pixels.dtype == torch.bfloat16 and pixels.shape == (1, 3, 32, 32)
    torch.testing.assert_close(pixels, normalize(resize_longest_side_pad(images, 32)).bfloat16())
    with pytest.raises(ValueError, match="'crop' or 'pad'"):
        reward.prepare_images(images, 32, mode="squash")
    with pytest.raises(NotImplementedError):
        reward(torch.rand(1, 3, 8, 8))
