"""Tiny random-weight pipelines of the other model families, for tests and examples.

The real classes with their real configuration keys, scaled down (sizes follow
diffusers' own ``get_dummy_components`` for SDXL and SD3). Tokenizers are the
local word-level ``CLIPTokenizer`` of :mod:`nulltta.testing`, so nothing is
downloaded. Every pipeline is on the CPU in float32, in eval mode.
"""

from __future__ import annotations

from typing import Any

import torch

from .testing import sd_ddim_scheduler, tiny_clip_tokenizer, tiny_unet, tiny_vae

__all__ = [
    "SDXL_TEXT_ENCODER_2_CONFIG",
    "SDXL_UNET_CONFIG",
    "tiny_sd3_pipeline",
    "tiny_sdxl_pipeline",
]

#: ``stabilityai/stable-diffusion-xl-base-1.0`` ``unet/config.json`` (architecture keys).
SDXL_UNET_CONFIG: dict[str, Any] = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}

#: ``text_encoder_2/config.json`` of SDXL base (OpenCLIP ViT-bigG/14 text tower).
SDXL_TEXT_ENCODER_2_CONFIG: dict[str, Any] = {
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "max_position_embeddings": 77,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    "vocab_size": 49408,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}


def _clip_config(tokenizer: Any, hidden: int, projection_dim: int, max_length: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        layer_norm_eps=1e-5,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=len(tokenizer),
        max_position_embeddings=max_length,
        projection_dim=projection_dim,
    )


def tiny_sdxl_pipeline(
    seed: int = 0,
    sample_size: int = 8,
    prediction_type: str = "epsilon",
    force_zeros_for_empty_prompt: bool = True,
    max_length: int = 16,
):
    """A ``StableDiffusionXLPipeline`` of a few thousand random parameters.

    Two CLIP text encoders (hidden 8 each, so the UNet's cross-attention
    width is 16 and the pooled embedding has 8 entries), ``text_time``
    added conditioning with 4-dim time embeddings, a DDIM scheduler on the
    SDXL training schedule. Latents are ``4 x sample_size^2``, images twice that.
    """
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = tiny_clip_tokenizer(max_length=max_length)
    tokenizer_2 = tiny_clip_tokenizer(max_length=max_length)
    hidden, projection, time_dim = 8, 8, 4
    unet = tiny_unet(
        seed,
        sample_size,
        cross_attention_dim=2 * hidden,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * time_dim + projection,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_clip_config(tokenizer, hidden, projection, max_length))
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(
        _clip_config(tokenizer_2, hidden, projection, max_length)
    )
    scheduler = sd_ddim_scheduler(timestep_spacing="leading", prediction_type=prediction_type)
    pipeline = StableDiffusionXLPipeline(
        vae=tiny_vae(seed),
        text_encoder=text_encoder.eval(),
        text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet.eval(),
        scheduler=scheduler,
        force_zeros_for_empty_prompt=force_zeros_for_empty_prompt,
        add_watermarker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def tiny_sd3_pipeline(
    seed: int = 0,
    sample_size: int = 8,
    shift: float = 3.0,
    with_t5: bool = True,
    max_length: int = 16,
):
    """A ``StableDiffusion3Pipeline`` (MMDiT, rectified flow) of random weights.

    Two ``CLIPTextModelWithProjection`` (hidden 8, projection 8: pooled
    embeddings of 16), an optional tiny ``T5EncoderModel`` (d_model 16, with
    the local CLIP tokenizer standing in for T5's; without it the pipeline
    uses zeros for the T5 tokens), an ``SD3Transformer2DModel`` with patch
    size 1 and one joint block, a VAE with SD3's ``shift_factor`` and no
    quant convs, and a ``FlowMatchEulerDiscreteScheduler`` with ``shift``.
    """
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection, T5Config, T5EncoderModel

    tokenizer = tiny_clip_tokenizer(max_length=max_length)
    tokenizer_2 = tiny_clip_tokenizer(max_length=max_length)
    hidden, projection, joint_dim = 8, 8, 32
    torch.manual_seed(seed)
    transformer = SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        caption_projection_dim=16,
        joint_attention_dim=joint_dim,
        pooled_projection_dim=2 * projection,
        out_channels=4,
        pos_embed_max_size=max(sample_size, 16),
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModelWithProjection(
        _clip_config(tokenizer, hidden, projection, max_length)
    )
    torch.manual_seed(seed + 1)
    text_encoder_2 = CLIPTextModelWithProjection(
        _clip_config(tokenizer_2, hidden, projection, max_length)
    )
    text_encoder_3 = tokenizer_3 = None
    if with_t5:
        tokenizer_3 = tiny_clip_tokenizer(max_length=max_length)
        torch.manual_seed(seed + 2)
        text_encoder_3 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer_3),
                d_model=joint_dim,
                d_kv=8,
                d_ff=32,
                num_layers=1,
                num_heads=2,
                relative_attention_num_buckets=8,
                pad_token_id=1,
            )
        ).eval()
    pipeline = StableDiffusion3Pipeline(
        transformer=transformer.eval(),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=shift),
        vae=tiny_vae(
            seed,
            use_quant_conv=False,
            use_post_quant_conv=False,
            shift_factor=0.0609,
            scaling_factor=1.5035,
        ),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2.eval(),
        tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3,
        tokenizer_3=tokenizer_3,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
