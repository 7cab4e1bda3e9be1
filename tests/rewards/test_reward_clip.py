"""PickScore and CLIPScore: parity with CLIPProcessor + CLIPModel (and torchmetrics), loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nulltta.rewards import CLIPScore, PickScore, RewardInputError, get_reward
from nulltta.rewards.loading import RewardWeightsError, RewardWeightsNotFoundError

PROMPTS = ["a photo of a cat", "a red house with a tree"]
# Parity tolerance (fp32, same weights, images on the uint8 grid at the model's
# input size): measured differences are ~1e-6 on PickScore (scale 50) and CLIPScore.
ATOL = 1e-4


def _reference_processor(tokenizer):
    """The processor the reference uses, with the tiny model's input size."""
    from transformers import CLIPProcessor

    try:
        from transformers.models.clip.image_processing_pil_clip import (
            CLIPImageProcessorPil as ImageProcessor,
        )
    except ImportError:  # transformers < 5: the PIL processor is the default one
        from transformers import CLIPImageProcessor as ImageProcessor
    image_processor = ImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _features(output):
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _reference_pickscore(model, processor, prompt, pil_images):
    """The README's ``calc_probs`` scores (before the softmax)."""
    image_inputs = processor(images=pil_images, padding=True, truncation=True, max_length=77,
                             return_tensors="pt")
    text_inputs = processor(text=prompt, padding=True, truncation=True, max_length=77,
                            return_tensors="pt")
    with torch.no_grad():
        image_embs = _features(model.get_image_features(**image_inputs))
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        text_embs = _features(model.get_text_features(**text_inputs))
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        return model.logit_scale.exp() * (text_embs @ image_embs.T)[0]


def test_pickscore_matches_the_reference(tiny_clip, clip_tokenizer, images, to_pil):
    reward = PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
    processor = _reference_processor(clip_tokenizer)
    for prompt in PROMPTS:
        ref = _reference_pickscore(tiny_clip, processor, prompt, to_pil(images))
        torch.testing.assert_close(reward(images, prompt), ref, rtol=0, atol=ATOL)
    # Per-image prompts score each image against its own prompt.
    per_image = reward(images, PROMPTS)
    for i, prompt in enumerate(PROMPTS):
        ref = _reference_pickscore(tiny_clip, processor, prompt, to_pil(images[i : i + 1]))
        torch.testing.assert_close(per_image[i : i + 1], ref, rtol=0, atol=ATOL)


def test_pickscore_reads_the_scale_from_the_checkpoint(tiny_clip, clip_tokenizer, images):
    reward = PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
    image = reward.image_embeddings(images).float()
    text = reward.text_embeddings(PROMPTS)
    cos = torch.nn.functional.cosine_similarity(image, text, dim=-1)
    torch.testing.assert_close(reward(images, PROMPTS), 50.0 * cos, rtol=1e-5, atol=1e-5)
    assert math.isclose(tiny_clip.logit_scale.exp().item(), 50.0, rel_tol=1e-6)


class _TensorFeatures(nn.Module):
    """transformers-4 style API (features as tensors), which torchmetrics 1.x expects."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, *args, **kwargs):
        return _features(self.model.get_image_features(*args, **kwargs))

    def get_text_features(self, *args, **kwargs):
        return _features(self.model.get_text_features(*args, **kwargs))


def test_clipscore_matches_torchmetrics(tiny_clip, clip_tokenizer, images):
    from torchmetrics.functional.multimodal import clip_score

    reward = CLIPScore(model=tiny_clip, tokenizer=clip_tokenizer)
    processor = _reference_processor(clip_tokenizer)
    uint8 = (images * 255).round().to(torch.uint8)
    for i, prompt in enumerate(PROMPTS):
        ref = clip_score(uint8[i : i + 1], prompt,
                         model_name_or_path=lambda: (_TensorFeatures(tiny_clip), processor))
        ours = reward(images[i : i + 1], prompt)
        torch.testing.assert_close(ours, ref.detach().reshape(1), rtol=0, atol=ATOL)


def test_clipscore_formula_and_graph(tiny_clip, clip_tokenizer, images):
    reward = CLIPScore(model=tiny_clip, tokenizer=clip_tokenizer)
    image = reward.image_embeddings(images).float()
    text = reward.text_embeddings(PROMPTS)
    cos = torch.nn.functional.cosine_similarity(image, text, dim=-1)
    torch.testing.assert_close(reward(images, PROMPTS), (100 * cos).clamp(min=0))
    assert reward.requires_prompts and reward.is_differentiable and reward.higher_is_better


def test_text_embeddings_are_cached_without_a_graph(tiny_clip, clip_tokenizer):
    reward = PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
    calls = []
    encode = reward._encode_text

    def counting(prompts):
        calls.append(list(prompts))
        return encode(prompts)

    reward._encode_text = counting
    first = reward.text_embeddings([PROMPTS[0], PROMPTS[1], PROMPTS[0]])
    again = reward.text_embeddings([PROMPTS[1], PROMPTS[0]])
    assert calls == [PROMPTS]  # encoded once, each prompt once
    assert first.grad_fn is None and first.dtype == torch.float32
    torch.testing.assert_close(again, first[[1, 0]])
    reward.clear_text_cache()
    reward.text_embeddings(PROMPTS[:1])
    assert len(calls) == 2


def _reference_pickscores(model, tokenizer, prompts, images, to_pil):
    """The reference score of each image against its own prompt."""
    processor = _reference_processor(tokenizer)
    pil = to_pil(images)
    return torch.cat(
        [_reference_pickscore(model, processor, p, pil[i : i + 1]) for i, p in enumerate(prompts)]
    )


def _reference_clipscore(model, tokenizer, prompts, images, to_pil):
    """``max(100 cos, 0)`` from the PickScore reference (50 cos: the logit scale is 50)."""
    return (2 * _reference_pickscores(model, tokenizer, prompts, images, to_pil)).clamp(min=0)


def test_long_prompts_are_truncated_to_the_context_length(
    tiny_clip, clip_tokenizer, images, to_pil
):
    reward = PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
    long = "a cat " * 100  # 600 characters: one token each, 77 kept
    scores = reward(images, [long, long])
    ref = _reference_pickscores(tiny_clip, clip_tokenizer, [long, long], images, to_pil)
    torch.testing.assert_close(scores, ref, rtol=0, atol=ATOL)
    # What lies past the context cannot change the score; what lies inside it does.
    torch.testing.assert_close(reward(images, [long + "a red house"] * 2), scores)
    assert not torch.allclose(reward(images, ["a cat"] * 2), scores, atol=1e-3)


def test_pickscore_and_clipscore_load_by_name_from_the_weights_dir(
    use_weights_dir, images, tiny_clip, clip_tokenizer, to_pil
):
    pick = get_reward("pickscore")
    assert isinstance(pick, PickScore)
    assert "PickScore_v1" in pick.model.config._name_or_path
    ref = _reference_pickscores(tiny_clip, clip_tokenizer, PROMPTS, images, to_pil)
    torch.testing.assert_close(pick(images, PROMPTS), ref, rtol=0, atol=ATOL)
    clip = get_reward("clipscore")
    assert isinstance(clip, CLIPScore)
    ref = _reference_clipscore(tiny_clip, clip_tokenizer, PROMPTS, images, to_pil)
    torch.testing.assert_close(clip(images, PROMPTS), ref, rtol=0, atol=ATOL)


def test_pickscore_loads_from_the_hub_cache(
    tiny_clip_dir, clip_tokenizer_dir, hub_cache, images, tiny_clip, clip_tokenizer, to_pil
):
    hub_cache("yuvalkirstain/PickScore_v1", {p.name: p for p in tiny_clip_dir.iterdir()})
    hub_cache("laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
              {p.name: p for p in clip_tokenizer_dir.iterdir()})
    reward = PickScore()
    ref = _reference_pickscores(tiny_clip, clip_tokenizer, PROMPTS, images, to_pil)
    torch.testing.assert_close(reward(images, PROMPTS), ref, rtol=0, atol=ATOL)


def test_explicit_folders_and_tokenizer_in_the_model_folder(tiny_clip_dir, clip_tokenizer_dir,
                                                            tmp_path, images, tiny_clip):
    import shutil

    both = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, both)
    for item in clip_tokenizer_dir.iterdir():
        shutil.copy(item, both / item.name)
    reward = PickScore(model=both)  # laion tokenizer absent: the model folder's is used
    ref = PickScore(model=tiny_clip, tokenizer=clip_tokenizer_dir)
    torch.testing.assert_close(reward(images, PROMPTS), ref(images, PROMPTS))
    with pytest.raises(RewardWeightsNotFoundError, match="tokenizer"):
        PickScore(model=tiny_clip_dir)


def test_missing_or_wrong_weights_raise_one_clear_error(tmp_path):
    with pytest.raises(RewardWeightsNotFoundError) as info:
        PickScore()
    assert "yuvalkirstain/PickScore_v1" in str(info.value)
    assert "NULLTTA_WEIGHTS_DIR" in str(info.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_text("nope")
    with pytest.raises(RewardWeightsError, match="cannot load a CLIPModel from"):
        CLIPScore(model=broken)


def test_prompts_are_required(tiny_clip, clip_tokenizer, images):
    reward = PickScore(model=tiny_clip, tokenizer=clip_tokenizer)
    with pytest.raises(RewardInputError, match="prompts"):
        reward(images)


def test_bfloat16_model_gives_float32_scores_close_to_float32(clip_tokenizer_dir, tiny_clip_dir):
    full = CLIPScore(model=tiny_clip_dir, tokenizer=clip_tokenizer_dir)
    half = CLIPScore(model=tiny_clip_dir, tokenizer=clip_tokenizer_dir, dtype="bf16")
    assert half.model_dtype == torch.bfloat16
    images = torch.rand(8, 3, 32, 32)
    prompts = PROMPTS * 4
    scores, reference = half(images, prompts), full(images, prompts)
    assert scores.dtype == torch.float32
    # 100 cos with bf16 embeddings (8-bit mantissa, ~0.5% relative error on these
    # tiny models): within 0.5 of fp32 (0.32 measured), on unclamped scores.
    unclamped = reference > 1.0
    assert unclamped.sum() >= 4
    torch.testing.assert_close(scores[unclamped], reference[unclamped], rtol=0, atol=0.5)
    assert (scores[~unclamped] < 1.5).all()
    assert not torch.equal(scores, reference)  # the bf16 model really ran
