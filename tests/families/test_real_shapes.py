"""The real SDXL and SD3 architectures, built on the meta device (no memory, no weights).

phi' must have the shapes of the released models: ``(1, 77, 2048)`` and ``(1, 1280)``
for SDXL, ``(1, 77 + 256, 4096)`` and ``(1, 2048)`` for SD3; the real denoisers must
accept them.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    T5Config,
    T5EncoderModel,
)

from nulltta.adapters import make_adapter
from nulltta.testing import sd_ddim_scheduler, tiny_clip_tokenizer
from nulltta.testing_families import SDXL_TEXT_ENCODER_2_CONFIG, SDXL_UNET_CONFIG

PROMPT = "a red circle"

# text_encoder/config.json of SDXL base and SD3 (CLIP ViT-L/14 text tower).
CLIP_L_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
}
# transformer/config.json of stabilityai/stable-diffusion-3-medium-diffusers.
SD3_TRANSFORMER_CONFIG = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "caption_projection_dim": 1536,
    "pooled_projection_dim": 2048,
    "out_channels": 16,
    "pos_embed_max_size": 192,
}
# text_encoder_3/config.json of SD3 (T5 v1.1 XXL encoder).
T5_XXL_CONFIG = {
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
}


def _sdxl_scheduler():
    return sd_ddim_scheduler()


@pytest.fixture(scope="module")
def meta_sdxl():
    with torch.device("meta"):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_ENCODER_2_CONFIG))
    return StableDiffusionXLPipeline(
        vae=None,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tiny_clip_tokenizer(max_length=77),
        tokenizer_2=tiny_clip_tokenizer(max_length=77),
        unet=unet,
        scheduler=_sdxl_scheduler(),
        add_watermarker=False,
    )


def test_sdxl_phi_prime_has_the_real_shapes(meta_sdxl):
    assert sum(p.numel() for p in meta_sdxl.unet.parameters()) > 2.5e9  # the real UNet
    adapter = make_adapter(meta_sdxl)
    assert adapter.default_resolution() == (1024, 1024) and adapter.default_guidance_scale == 5.0
    assert adapter.null_shapes() == {"encoder_hidden_states": (77, 2048), "text_embeds": (1280,)}
    cond, null = adapter.encode_prompt(PROMPT, negative_prompt="blue square")
    shapes = {k: tuple(v.shape) for k, v in null.items()}
    assert shapes == {"encoder_hidden_states": (1, 77, 2048), "text_embeds": (1, 1280)}
    assert {k: tuple(v.shape) for k, v in cond.items()} == shapes
    packed = adapter.pack_null(null)
    assert packed.shape == (1, 77 * 2048 + 1280)
    unpacked = adapter.unpack_null(packed, null)
    assert {k: tuple(v.shape) for k, v in unpacked.items()} == shapes
    latents = torch.empty(adapter.latent_shape(1, 1024, 1024), device="meta")
    assert latents.shape == (1, 4, 128, 128)
    eps = adapter.predict_noise(latents, 999, unpacked)  # the real UNet takes phi'
    assert eps.shape == latents.shape


def test_sd3_phi_prime_has_the_real_shapes():
    with torch.device("meta"):
        transformer = SD3Transformer2DModel(**SD3_TRANSFORMER_CONFIG)
        text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_L_CONFIG))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**SDXL_TEXT_ENCODER_2_CONFIG))
        text_encoder_3 = T5EncoderModel(T5Config(**T5_XXL_CONFIG))
    pipe = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=None,
        text_encoder=text_encoder,
        tokenizer=tiny_clip_tokenizer(max_length=77),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tiny_clip_tokenizer(max_length=77),
        text_encoder_3=text_encoder_3,
        tokenizer_3=tiny_clip_tokenizer(max_length=256),
    )
    adapter = make_adapter(pipe)
    assert adapter.null_shapes() == {
        "encoder_hidden_states": (77 + 256, 4096),
        "pooled_projections": (2048,),
    }
    _, null = adapter.encode_prompt(PROMPT)
    assert {k: tuple(v.shape[1:]) for k, v in null.items()} == adapter.null_shapes()
    packed = adapter.pack_null(null)
    assert packed.shape == (1, 333 * 4096 + 2048)
    latents = torch.empty(1, 16, 128, 128, device="meta")
    velocity = adapter.predict_noise(latents, 1000.0, adapter.unpack_null(packed, null))
    assert velocity.shape == latents.shape
