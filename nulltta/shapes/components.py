"""Build the embedded model's Stable Diffusion components from their configs.

The layout is Stable Diffusion 1.x at toy scale: an ``AutoencoderKL`` (32x32
RGB to 8x8x4 latents), a ``UNet2DConditionModel`` with cross-attention, a
2-layer ``CLIPTextModel`` and a local ``CLIPTokenizer`` whose vocabulary is
the world's words, so nothing is fetched from the network.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from .world import VOCABULARY

__all__ = [
    "MAX_LENGTH",
    "SCHEDULER_CONFIG",
    "TEXT_CONFIG",
    "UNET_CONFIG",
    "VAE_CONFIG",
    "build_text_encoder",
    "build_tokenizer",
    "build_unet",
    "build_vae",
    "write_tokenizer_files",
]

MAX_LENGTH = 16
_SPECIALS = ("<|startoftext|>", "<|endoftext|>")
_PUNCTUATION = (",", ".", "!", "?", "'", "-", ":", ";")

VAE_CONFIG: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 3,
    "up_block_types": ["UpDecoderBlock2D"] * 3,
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 16,
    "sample_size": 32,
    "mid_block_add_attention": True,
}
UNET_CONFIG: dict = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [64, 128],
    "layers_per_block": 1,
    "cross_attention_dim": 128,
    "attention_head_dim": 4,
    "norm_num_groups": 32,
}
TEXT_CONFIG: dict = {
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": MAX_LENGTH,
    "projection_dim": 128,
}
SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
}


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's byte-pair merge of one word (end-of-word marked with ``</w>``)."""
    parts = [*word[:-1], word[-1] + "</w>"]
    while len(parts) > 1:
        neighbours = zip(parts[:-1], parts[1:], strict=True)
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(neighbours)]
        known = [(r, i) for r, i in pairs if r is not None]
        if not known:
            break
        _, i = min(known)
        parts = [*parts[:i], parts[i] + parts[i + 1], *parts[i + 2 :]]
    return parts


def _merges_for(words: list[str]) -> list[tuple[str, str]]:
    """Merges that turn every word into one token.

    Each new merge ranks below all earlier ones, so it can never change how an
    earlier (already whole) word is merged.
    """
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        while len(parts := _bpe(word, ranks)) > 1:
            ranks[(parts[0], parts[1])] = len(merges)
            merges.append((parts[0], parts[1]))
    return merges


def write_tokenizer_files(folder: str | Path) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer configs into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = sorted(set(VOCABULARY))
    merges = _merges_for(words)
    letters = sorted({ch for w in words for ch in w})
    tokens = [*_SPECIALS, *[w + "</w>" for w in words], *[p + "</w>" for p in _PUNCTUATION]]
    tokens += [ch for ch in letters] + [ch + "</w>" for ch in letters]
    tokens += [a + b for a, b in merges]  # tokenizers' BPE wants every merge result in the vocab
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0) + "\n")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    tok = CLIPTokenizer(
        vocab=vocab,
        merges=list(merges),
        unk_token="<|endoftext|>",
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=MAX_LENGTH,
    )
    tok.save_pretrained(folder)
    return folder


def build_tokenizer(folder: str | Path) -> CLIPTokenizer:
    """Write the tokenizer files into ``folder`` and load them."""
    return CLIPTokenizer.from_pretrained(write_tokenizer_files(folder))


def build_vae() -> AutoencoderKL:
    """A fresh 32x32 -> 8x8x4 ``AutoencoderKL`` (scaling factor set after training)."""
    return AutoencoderKL(**VAE_CONFIG)


def build_unet() -> UNet2DConditionModel:
    """A fresh cross-attention ``UNet2DConditionModel`` for 8x8x4 latents."""
    return UNet2DConditionModel(**UNET_CONFIG)


def build_text_encoder(tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A fresh 2-layer ``CLIPTextModel`` sized for ``tokenizer``."""
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT_CONFIG,
    )
    return CLIPTextModel(config)


def build_scheduler(prediction_type: str = "epsilon") -> DDIMScheduler:
    """The DDIM scheduler shipped with the model (SD 1.x betas).

    ``prediction_type`` is what the UNet predicts: ``"v_prediction"`` (the
    shipped model, version 2.1) or ``"epsilon"`` (version 2.0, and the default
    here and in ``train_model``).
    """
    return DDIMScheduler(**{**SCHEDULER_CONFIG, "prediction_type": prediction_type})
