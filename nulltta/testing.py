"""Tiny pipelines with random weights and the real classes, for tests and examples.

Sizes follow diffusers' own pipeline tests (``get_dummy_components``). The
tokenizer is a real ``CLIPTokenizer`` over a small word-level vocabulary
written to a folder, so nothing is downloaded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TINY_WORDS",
    "sd15_random_pipeline",
    "sd_ddim_scheduler",
    "tiny_clip_tokenizer",
    "tiny_stable_diffusion_pipeline",
    "tiny_unet",
    "tiny_vae",
]

TINY_WORDS = (
    "a photo of an the cat dog on sofa red green blue circle square white black background "
    "painting house tree sky with and in".split()
)


def _word_level_bpe(words: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """Vocabulary and merges that build every word left to right into one token.

    Every intermediate piece is in the vocabulary, so even where two words'
    merges interact the tokenizer never produces an unknown token.
    """
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    merges: list[tuple[str, str]] = []
    chars = sorted({c for word in words for c in word} | set("!,."))
    tokens += chars + [c + "</w>" for c in chars]
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        merged = pieces[0]
        for piece in pieces[1:]:
            if (merged, piece) not in merges:
                merges.append((merged, piece))
            merged += piece
            if merged not in tokens:
                tokens.append(merged)
    return tokens, merges


def tiny_clip_tokenizer(folder: str | Path | None = None, max_length: int = 16):
    """A ``CLIPTokenizer`` over ``TINY_WORDS`` (whole words, one token each).

    Parameters
    ----------
    folder : path, optional
        Where to write ``vocab.json`` and ``merges.txt``; a temporary folder by default.
    max_length : int, default=16
        ``model_max_length`` (padding length of prompts).

    """
    from transformers import CLIPTokenizer

    folder = Path(folder or tempfile.mkdtemp(prefix="nulltta-tokenizer-"))
    folder.mkdir(parents=True, exist_ok=True)
    tokens, merges = _word_level_bpe(TINY_WORDS)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=max_length,
        pad_token="<|endoftext|>",
    )


def tiny_vae(seed: int = 0, **extra: Any):
    """An ``AutoencoderKL`` with blocks (4, 8): factor 2, 4 latent channels, eval mode.

    ``extra`` config entries (e.g. ``shift_factor``) are passed on.
    """
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
        **extra,
    ).eval()


def sd_ddim_scheduler(**overrides: Any) -> Any:
    """A ``DDIMScheduler`` on Stable Diffusion 1.x's training schedule (``overrides`` on top).

    Scaled-linear betas 0.00085-0.012, no clipping, ``set_alpha_to_one=False``,
    ``steps_offset=1``: the scheduler config SD 1.x checkpoints ship.
    """
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        **{
            "beta_start": 0.00085,
            "beta_end": 0.012,
            "beta_schedule": "scaled_linear",
            "clip_sample": False,
            "set_alpha_to_one": False,
            "steps_offset": 1,
            **overrides,
        }
    )


def tiny_unet(seed: int, sample_size: int, cross_attention_dim: int, **config: Any) -> Any:
    """A two-block ``UNet2DConditionModel`` (channels 4 and 8) with random weights.

    ``config`` adds or overrides ``UNet2DConditionModel`` arguments (SDXL's
    added conditioning, for instance).
    """
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        **{
            "block_out_channels": (4, 8),
            "layers_per_block": 1,
            "sample_size": sample_size,
            "in_channels": 4,
            "out_channels": 4,
            "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
            "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
            "cross_attention_dim": cross_attention_dim,
            "norm_num_groups": 2,
            **config,
        }
    )


def tiny_stable_diffusion_pipeline(
    seed: int = 0, sample_size: int = 8, prediction_type: str = "epsilon", max_length: int = 16
):
    """A ``StableDiffusionPipeline`` of a few thousand random parameters.

    Latents are ``4 x sample_size x sample_size``; images are twice that
    (VAE with two blocks). Everything is on the CPU in float32, in eval mode.
    """
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_clip_tokenizer(max_length=max_length)
    unet = tiny_unet(seed, sample_size, cross_attention_dim=8)
    vae = tiny_vae(seed)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            hidden_size=8,
            intermediate_size=16,
            layer_norm_eps=1e-5,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=len(tokenizer),
            max_position_embeddings=max_length,
        )
    )
    scheduler = sd_ddim_scheduler(prediction_type=prediction_type)
    pipeline = StableDiffusionPipeline(
        unet=unet.eval(),
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def sd15_random_pipeline(seed: int = 0):
    """A ``StableDiffusionPipeline`` of Stable Diffusion 1.5's architecture, random weights.

    For speed and memory benchmarks: the UNet (860 M parameters) and the VAE
    have SD1.5's exact configs, so a pass costs what it costs with the real
    weights; the text encoder has one layer (it only makes ``c`` and phi,
    77 x 768) over the small local tokenizer. Float32, CPU, eval mode.
    """
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=768,
        attention_head_dim=8,
        norm_num_groups=32,
        act_fn="silu",
        flip_sin_to_cos=True,
        freq_shift=0,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=512,
        scaling_factor=0.18215,
    )
    tokenizer = tiny_clip_tokenizer(max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=768,
            intermediate_size=1024,
            num_hidden_layers=1,
            num_attention_heads=12,
            max_position_embeddings=77,
            vocab_size=len(tokenizer),
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    pipeline = StableDiffusionPipeline(
        unet=unet.eval(),
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        scheduler=sd_ddim_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
