"""HPSv2 / HPSv2.1: parity with open_clip's own preprocessing and encoders, loading."""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch

from nulltta.rewards import HPSv2, get_reward
from nulltta.rewards.hpsv2 import HPS_FILES, hpsv2_available, load_hps_model
from nulltta.rewards.loading import RewardWeightsError, RewardWeightsNotFoundError

PROMPTS = ["a photo of a cat", "a red house with a tree"]
# fp32, same weights, images on the uint8 grid at the input size: ~1e-7 measured.
ATOL = 1e-5


def _reference_hps(model, pil_images, prompt):
    """hpsv2/img_score.py ``score`` with open_clip: preprocess_val, encode, diagonal."""
    import open_clip

    preprocess_val = open_clip.image_transform(
        model.visual.image_size, is_train=False, resize_mode="longest"
    )
    tokenizer = open_clip.get_tokenizer("ViT-H-14")
    scores = []
    with torch.no_grad():
        for pil in pil_images:
            image = preprocess_val(pil).unsqueeze(0)
            text = tokenizer([prompt])
            image_features = model.encode_image(image, normalize=True)
            text_features = model.encode_text(text, normalize=True)
            scores.append(torch.diagonal(image_features @ text_features.T)[0])
    return torch.stack(scores)


def _half_rounded(model):
    """A copy with every weight rounded to fp16, as ``hps_checkpoint`` stores them."""
    copy = deepcopy(model)
    with torch.no_grad():
        for tensor in list(copy.parameters()) + list(copy.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return copy


def _reference_hps_per_image(model, pil_images, prompts):
    pairs = zip(pil_images, prompts, strict=True)
    return torch.cat([_reference_hps(model, [image], prompt) for image, prompt in pairs])


def test_hps_matches_open_clip_reference(tiny_open_clip, open_clip_arch, images, to_pil):
    reward = HPSv2(model=tiny_open_clip, arch=open_clip_arch)
    for prompt in PROMPTS:
        ref = _reference_hps(tiny_open_clip, to_pil(images), prompt)
        torch.testing.assert_close(reward(images, prompt), ref, rtol=0, atol=ATOL)


def test_hps_non_square_images_follow_the_reference_within_pil_rounding(
    tiny_open_clip, open_clip_arch, to_pil
):
    """open_clip resizes the PIL (uint8) image; ours resizes the float tensor.

    Tolerance 2e-3 on a cosine for 48x24 noise images (the hardest case; 3e-4 measured).
    """
    images = torch.randint(0, 256, (2, 3, 48, 24)).float() / 255
    reward = HPSv2(model=tiny_open_clip, arch=open_clip_arch)
    ref = _reference_hps(tiny_open_clip, to_pil(images), PROMPTS[0])
    torch.testing.assert_close(reward(images, PROMPTS[0]), ref, rtol=0, atol=2e-3)


def test_hps_checkpoint_loads_through_the_real_path(hps_checkpoint, tiny_open_clip,
                                                   open_clip_arch, images):
    model = load_hps_model(hps_checkpoint, "v2.0", arch=open_clip_arch)
    for key, value in tiny_open_clip.state_dict().items():  # saved in fp16, loaded in fp32
        torch.testing.assert_close(model.state_dict()[key], value.half().float())
    reward = HPSv2(model=hps_checkpoint.parent, arch=open_clip_arch)
    half_ref = HPSv2(model=model, arch=open_clip_arch)
    torch.testing.assert_close(reward(images, PROMPTS), half_ref(images, PROMPTS))


def test_hps_versions_resolve_their_own_files_by_name(
    use_weights_dir, open_clip_arch, images, tiny_open_clip, to_pil
):
    assert HPS_FILES == {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
    v20 = get_reward("hpsv2", arch=open_clip_arch)
    v21 = get_reward("hpsv2.1", arch=open_clip_arch)
    assert (v20.version, v21.version) == ("v2.0", "v2.1")
    ref = _reference_hps_per_image(_half_rounded(tiny_open_clip), to_pil(images), PROMPTS)
    torch.testing.assert_close(v21(images, PROMPTS), ref, rtol=0, atol=ATOL)
    torch.testing.assert_close(v20(images, PROMPTS), ref, rtol=0, atol=ATOL)
    assert hpsv2_available("v2.1")[1].endswith("xswu/HPSv2/HPS_v2.1_compressed.pt")
    with pytest.raises(ValueError, match="unknown HPS version"):
        HPSv2(version="v3")


def test_hps_loads_from_the_hub_cache(
    hps_checkpoint, hub_cache, open_clip_arch, images, tiny_open_clip, to_pil
):
    assert not hpsv2_available("v2.0")[0]
    hub_cache("xswu/HPSv2", {"HPS_v2_compressed.pt": hps_checkpoint})
    assert hpsv2_available("v2.0")[0]
    ref = _reference_hps_per_image(_half_rounded(tiny_open_clip), to_pil(images), PROMPTS)
    torch.testing.assert_close(HPSv2(arch=open_clip_arch)(images, PROMPTS), ref, rtol=0, atol=ATOL)


def test_hps_missing_and_wrong_checkpoints(tmp_path, aesthetic_head, open_clip_arch):
    with pytest.raises(RewardWeightsNotFoundError, match=r"'HPS_v2\.1_compressed\.pt' not found"):
        HPSv2(version="v2.1", arch=open_clip_arch)
    wrong = tmp_path / "HPS_v2_compressed.pt"
    torch.save(aesthetic_head.state_dict(), wrong)
    with pytest.raises(RewardWeightsError, match="does not match the model"):
        HPSv2(model=wrong, arch=open_clip_arch)


def test_hps_tokenizer_ships_with_open_clip():
    import open_clip

    tokenizer = open_clip.get_tokenizer("ViT-H-14")
    tokens = tokenizer(["a photo of a cat"])
    assert tokens.shape == (1, 77) and tokens[0, 0] == 49406  # <start_of_text>
