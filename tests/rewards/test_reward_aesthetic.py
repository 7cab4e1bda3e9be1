"""LAION aesthetic predictor v2: parity with simple_inference.py's formula, loading."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.transforms import (
    CenterCrop,
    Compose,
    InterpolationMode,
    Normalize,
    Resize,
    ToTensor,
)

from nulltta.rewards import Aesthetic, get_reward, load_aesthetic_head
from nulltta.rewards.aesthetic import aesthetic_available
from nulltta.rewards.loading import RewardWeightsError, RewardWeightsNotFoundError
from nulltta.rewards.pretrained import MLPHead

# fp32, same weights, uint8-grid images at the input size: ~1e-7 measured.
ATOL = 1e-5


def _normalized(a, axis=-1, order=2):
    l2 = np.atleast_1d(np.linalg.norm(a, order, axis))
    l2[l2 == 0] = 1
    return a / np.expand_dims(l2, axis)


def _reference_aesthetic(clip_model, head, pil_images):
    """simple_inference.py: CLIP preprocess, encode_image, numpy normalise, MLP."""
    preprocess = Compose([
        Resize(32, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(32),
        ToTensor(),
        Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    image = torch.stack([preprocess(p) for p in pil_images])
    with torch.no_grad():
        features = clip_model.get_image_features(pixel_values=image)
        features = features if isinstance(features, torch.Tensor) else features.pooler_output
        embedding = _normalized(features.numpy())
        return head(torch.from_numpy(embedding).float()).reshape(-1)


def test_aesthetic_matches_the_reference(tiny_clip, aesthetic_head, images, to_pil):
    reward = Aesthetic(head=aesthetic_head, clip_model=tiny_clip)
    ref = _reference_aesthetic(tiny_clip, aesthetic_head, to_pil(images))
    torch.testing.assert_close(reward(images), ref, rtol=0, atol=ATOL)
    assert not reward.requires_prompts
    torch.testing.assert_close(reward(images, ["ignored", "prompts"]), ref, rtol=0, atol=ATOL)


def test_head_file_loads_bare_or_wrapped(aesthetic_head, tmp_path):
    bare = tmp_path / "bare" / "sac+logos+ava1-l14-linearMSE.pth"
    bare.parent.mkdir()
    torch.save(aesthetic_head.state_dict(), bare)
    head = load_aesthetic_head(bare.parent)
    assert head.input_size == 16 and not head.training
    x = torch.randn(3, 16)
    torch.testing.assert_close(head(x), aesthetic_head(x))
    # Without the "layers." prefix (an nn.Sequential saved directly) it loads too.
    seq = tmp_path / "seq.pth"
    torch.save(aesthetic_head.layers.state_dict(), seq)
    torch.testing.assert_close(load_aesthetic_head(seq)(x), aesthetic_head(x))


def test_aesthetic_by_name_from_the_weights_dir(
    use_weights_dir, images, aesthetic_head, tiny_clip, to_pil
):
    reward = get_reward("aesthetic")
    assert isinstance(reward, Aesthetic)
    assert aesthetic_available()[0]
    x = torch.randn(2, 16)
    torch.testing.assert_close(reward.head(x), aesthetic_head(x))
    ref = _reference_aesthetic(tiny_clip, aesthetic_head, to_pil(images))
    torch.testing.assert_close(reward(images), ref, rtol=0, atol=ATOL)


def test_aesthetic_missing_and_wrong_files(tmp_path, tiny_clip):
    with pytest.raises(RewardWeightsNotFoundError, match=r"sac\+logos\+ava1-l14-linearMSE\.pth"):
        Aesthetic(clip_model=tiny_clip)
    found, where = aesthetic_available()
    assert not found and "camenduru/improved-aesthetic-predictor" in where
    wrong = tmp_path / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save({"weight": torch.ones(3)}, wrong)
    with pytest.raises(RewardWeightsError, match="layers.0.weight"):
        Aesthetic(head=wrong, clip_model=tiny_clip)
    with pytest.raises(ValueError, match="ViT-L/14"):
        Aesthetic(head=MLPHead(768), clip_model=tiny_clip)


def test_head_stays_float32_with_a_bfloat16_clip(tiny_clip_dir, aesthetic_head, images):
    reward = Aesthetic(head=aesthetic_head, clip_model=tiny_clip_dir, dtype=torch.bfloat16)
    assert reward.model_dtype == torch.bfloat16
    assert reward.head.layers[0].weight.dtype == torch.float32
    assert reward(images).dtype == torch.float32
