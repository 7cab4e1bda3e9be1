"""ImageReward: parity with a re-statement of the reference forward, real file layout."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import (
    CenterCrop,
    Compose,
    InterpolationMode,
    Normalize,
    Resize,
    ToTensor,
)

from nulltta.rewards import ImageReward, get_reward, load_imagereward_model
from nulltta.rewards.imagereward import imagereward_available
from nulltta.rewards.imagereward_model import BlipVisionConfig, MedConfig
from nulltta.rewards.loading import RewardWeightsError, RewardWeightsNotFoundError

PROMPTS = ["a photo of a cat", "a red house with a tree on the sofa"]
# fp32, same weights, uint8-grid images at the input size: ~1e-6 measured.
ATOL = 1e-5


def _ln(x, module, eps):
    return F.layer_norm(x, (x.shape[-1],), module.weight, module.bias, eps)


def _reference_vit(vit, image):
    """BLIP vit.py ``VisionTransformer.forward``, written out."""
    x = vit.patch_embed.proj(image).flatten(2).transpose(1, 2)
    x = torch.cat((vit.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
    x = x + vit.pos_embed[:, : x.size(1), :]
    for blk in vit.blocks:
        y = _ln(x, blk.norm1, 1e-6)
        B, N, C = y.shape
        heads = blk.attn.heads
        qkv = blk.attn.qkv(y).reshape(B, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (C // heads) ** -0.5).softmax(dim=-1)
        x = x + blk.attn.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
        x = x + blk.mlp.fc2(F.gelu(blk.mlp.fc1(_ln(x, blk.norm2, 1e-6))))
    return _ln(x, vit.norm, 1e-6)


def _reference_attention(att, hidden, context, mask):
    """med.py ``BertAttention`` with the additive (1 - mask) * -10000 mask."""
    heads = att.self.heads

    def split(x):
        return x.view(x.shape[0], x.shape[1], heads, -1).permute(0, 2, 1, 3)

    q = split(att.self.query(hidden))
    k, v = split(att.self.key(context)), split(att.self.value(context))
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask
    ctx = (scores.softmax(dim=-1) @ v).permute(0, 2, 1, 3).reshape(hidden.shape)
    return _ln(att.output.dense(ctx) + hidden, att.output.LayerNorm, 1e-12)


def _reference_imagereward(model, tokenizer, prompt, pil_images):
    """ImageReward.py ``score`` for each image: preprocess, BLIP, MLP, standardise."""
    preprocess = Compose([
        Resize(32, interpolation=InterpolationMode.BICUBIC),
        CenterCrop(32),
        ToTensor(),
        Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])
    text_input = tokenizer(prompt, padding="max_length", truncation=True, max_length=35,
                           return_tensors="pt")
    bert = model.blip.text_encoder
    rewards = []
    with torch.no_grad():
        for pil in pil_images:
            image = preprocess(pil).unsqueeze(0)
            image_embeds = _reference_vit(model.blip.visual_encoder, image)
            ids, att = text_input.input_ids, text_input.attention_mask
            emb = bert.embeddings
            hidden = emb.word_embeddings(ids) + emb.position_embeddings(torch.arange(ids.shape[1]))
            hidden = _ln(hidden, emb.LayerNorm, 1e-12)
            self_mask = (1.0 - att[:, None, None, :].float()) * -10000.0
            image_mask = torch.zeros(1, 1, 1, image_embeds.shape[1])  # (1 - ones) * -10000
            for layer in bert.encoder.layer:
                hidden = _reference_attention(layer.attention, hidden, hidden, self_mask)
                hidden = _reference_attention(
                    layer.crossattention, hidden, image_embeds, image_mask
                )
                inter = F.gelu(layer.intermediate.dense(hidden))
                hidden = _ln(layer.output.dense(inter) + hidden, layer.output.LayerNorm, 1e-12)
            raw = model.mlp(hidden[:, 0, :].float())
            rewards.append(((raw - 0.16717362830052426) / 1.0333394966054072).reshape(()))
    return torch.stack(rewards)


def test_imagereward_matches_the_reference_forward(tiny_imagereward, bert_tokenizer, images,
                                                   to_pil):
    reward = ImageReward(model=tiny_imagereward, tokenizer=bert_tokenizer)
    for prompt in PROMPTS:
        ref = _reference_imagereward(tiny_imagereward, bert_tokenizer, prompt, to_pil(images))
        torch.testing.assert_close(reward(images, prompt), ref, rtol=0, atol=ATOL)


def test_tokenizer_is_bert_uncased_with_dec_and_enc(bert_tokenizer):
    assert bert_tokenizer.bos_token == "[DEC]"
    assert "[ENC]" in bert_tokenizer.convert_ids_to_tokens(bert_tokenizer.all_special_ids)
    tokens = bert_tokenizer("A Photo of Cats", padding="max_length", max_length=35)
    assert len(tokens["input_ids"]) == 35
    words = bert_tokenizer.convert_ids_to_tokens(tokens["input_ids"][:7])
    assert words == ["[CLS]", "a", "photo", "of", "cat", "##s", "[SEP]"]


def test_state_dict_keys_are_those_of_the_release(tiny_imagereward):
    keys = set(tiny_imagereward.state_dict())
    for key in [
        "blip.visual_encoder.cls_token", "blip.visual_encoder.pos_embed",
        "blip.visual_encoder.patch_embed.proj.weight",
        "blip.visual_encoder.blocks.1.attn.qkv.weight",
        "blip.visual_encoder.blocks.0.attn.proj.bias",
        "blip.visual_encoder.blocks.0.mlp.fc2.weight",
        "blip.visual_encoder.norm.weight", "blip.text_encoder.embeddings.word_embeddings.weight",
        "blip.text_encoder.embeddings.LayerNorm.bias",
        "blip.text_encoder.encoder.layer.1.crossattention.self.query.weight",
        "blip.text_encoder.encoder.layer.0.crossattention.self.key.weight",
        "blip.text_encoder.encoder.layer.0.attention.output.LayerNorm.weight",
        "blip.text_encoder.encoder.layer.0.intermediate.dense.weight",
        "blip.text_encoder.encoder.layer.0.output.dense.bias",
        "blip.vision_proj.weight", "blip.text_proj.bias",
        "mlp.layers.0.weight", "mlp.layers.7.bias",
    ]:
        assert key in keys, key
    # Cross-attention keys/values read the ViT width (128), queries the BERT width (32).
    key = "blip.text_encoder.encoder.layer.0.crossattention.self.key.weight"
    assert tuple(tiny_imagereward.state_dict()[key].shape) == (32, 128)


def test_vision_config_is_read_off_the_checkpoint(tiny_imagereward):
    config = BlipVisionConfig.from_state_dict(tiny_imagereward.state_dict())
    assert config == BlipVisionConfig(image_size=32, patch_size=8, width=128, depth=2, heads=2)
    default = MedConfig()
    assert (default.hidden_size, default.vocab_size, default.num_hidden_layers) == (768, 30524, 12)


def _reference_per_image(model, tokenizer, images, to_pil):
    pil = to_pil(images)
    return torch.cat(
        [_reference_imagereward(model, tokenizer, p, pil[i : i + 1]) for i, p in enumerate(PROMPTS)]
    )


def test_imagereward_by_name_from_the_real_files(use_weights_dir, tiny_imagereward, images,
                                                 bert_tokenizer, to_pil):
    assert imagereward_available()[0]
    reward = get_reward("imagereward")
    assert isinstance(reward, ImageReward)
    for key, value in tiny_imagereward.state_dict().items():
        torch.testing.assert_close(reward.model.state_dict()[key], value)
    ref = _reference_per_image(tiny_imagereward, bert_tokenizer, images, to_pil)
    torch.testing.assert_close(reward(images, PROMPTS), ref, rtol=0, atol=ATOL)


def test_imagereward_loads_from_the_hub_cache(weights_dir, hub_cache, images, tiny_imagereward,
                                              bert_tokenizer, to_pil):
    files = weights_dir / "THUDM" / "ImageReward"
    hub_cache("THUDM/ImageReward", {p.name: p for p in files.iterdir()})
    hub_cache("google-bert/bert-base-uncased",
              {p.name: p for p in (weights_dir / "bert-base-uncased").iterdir()})
    ref = _reference_per_image(tiny_imagereward, bert_tokenizer, images, to_pil)
    torch.testing.assert_close(ImageReward()(images, PROMPTS), ref, rtol=0, atol=ATOL)


def test_imagereward_missing_and_wrong_files(tmp_path, hps_checkpoint, bert_tokenizer,
                                             med_config_dict):
    import json

    with pytest.raises(RewardWeightsNotFoundError, match=r"'ImageReward\.pt' not found"):
        ImageReward(tokenizer=bert_tokenizer)
    found, where = imagereward_available()
    assert not found and "ImageReward.pt" in where and "bert-base-uncased" in where
    wrong = tmp_path / "ImageReward.pt"
    wrong.write_bytes(hps_checkpoint.read_bytes())
    (tmp_path / "med_config.json").write_text(json.dumps(med_config_dict))
    with pytest.raises(RewardWeightsError, match="not an ImageReward checkpoint"):
        load_imagereward_model(tmp_path)


def test_bfloat16_encoders_keep_a_float32_head(weights_dir, bert_tokenizer, images):
    path = weights_dir / "THUDM" / "ImageReward"
    full = ImageReward(model=path, tokenizer=bert_tokenizer)
    half = ImageReward(model=path, tokenizer=bert_tokenizer, dtype="bfloat16")
    assert half.model_dtype == torch.bfloat16
    assert half.model.mlp.layers[0].weight.dtype == torch.float32
    scores = half(images, PROMPTS)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, full(images, PROMPTS), rtol=0, atol=0.1)
