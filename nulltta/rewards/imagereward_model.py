"""The ImageReward network in plain torch: BLIP ViT + BERT with cross-attention + MLP.

Written from the reference (THUDM/ImageReward ``ImageReward.py``, BLIP
``vit.py`` and ``med.py``) so that the parameter names are exactly those of
``ImageReward.pt`` (``blip.visual_encoder.*``, ``blip.text_encoder.*``,
``blip.vision_proj``, ``blip.text_proj``, ``mlp.layers.*``) and the state
dict loads directly, without timm, fairscale or the authors' package. The
forward pass is differentiable end to end; dropouts are omitted (the model is
only used in eval mode) and attention uses ``scaled_dot_product_attention``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pretrained import MLPHead

__all__ = [
    "BlipVisionConfig",
    "BlipVisionTransformer",
    "ImageRewardModel",
    "MedBertModel",
    "MedConfig",
]


@dataclass
class BlipVisionConfig:
    """BLIP vision transformer sizes (defaults: ViT-L/16 at 224, as ImageReward)."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 1024
    depth: int = 24
    heads: int = 16
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6

    @classmethod
    def from_state_dict(
        cls,
        state: Mapping[str, Tensor],
        prefix: str = "blip.visual_encoder.",
        heads: int | None = None,
    ) -> BlipVisionConfig:
        """Read the sizes off a state dict; heads default to ``width // 64`` (16 for ViT-L)."""
        proj = state[f"{prefix}patch_embed.proj.weight"]
        width, patch = int(proj.shape[0]), int(proj.shape[-1])
        num_patches = int(state[f"{prefix}pos_embed"].shape[1]) - 1
        grid = round(num_patches**0.5)
        if grid * grid != num_patches:
            raise ValueError(f"pos_embed holds {num_patches} patches, not a square grid")
        blocks = f"{prefix}blocks."
        depth = len({k[len(blocks) :].split(".")[0] for k in state if k.startswith(blocks)})
        hidden = int(state[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0])
        return cls(
            image_size=grid * patch,
            patch_size=patch,
            width=width,
            depth=depth,
            heads=heads if heads is not None else max(1, width // 64),
            mlp_ratio=hidden / width,
        )


@dataclass
class MedConfig:
    """The BERT sizes of BLIP's ``med_config.json`` (defaults: ImageReward's)."""

    vocab_size: int = 30524
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0
    encoder_width: int = 768

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MedConfig:
        """Keep the known keys of a BERT config dict, ignore the others."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> MedConfig:
        """Read ``med_config.json``."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def _heads(x: Tensor, heads: int) -> Tensor:
    batch, length, width = x.shape
    return x.view(batch, length, heads, width // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    batch, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * dim)


# ---------------------------------------------------------------- vision (BLIP vit.py)
class PatchEmbed(nn.Module):
    """Non-overlapping patches by a strided convolution (timm's ``PatchEmbed``)."""

    def __init__(self, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 3, H, W) -> (B, N, width)``."""
        return self.proj(x).flatten(2).transpose(1, 2)


class VitAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over all tokens."""
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.proj(_merge(F.scaled_dot_product_attention(q, k, v)))


class VitMlp(nn.Module):
    """``fc1 - GELU - fc2``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the MLP."""
        return self.fc2(self.act(self.fc1(x)))


class VitBlock(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: BlipVisionConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.attn = VitAttention(config.width, config.heads)
        self.norm2 = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        self.mlp = VitMlp(config.width, int(config.width * config.mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class BlipVisionTransformer(nn.Module):
    """BLIP's ViT: patch tokens plus a class token, returns every token after the final norm."""

    def __init__(self, config: BlipVisionConfig) -> None:
        super().__init__()
        if config.width % config.heads:
            raise ValueError(f"width {config.width} is not a multiple of heads {config.heads}")
        self.config = config
        num_patches = (config.image_size // config.patch_size) ** 2
        self.patch_embed = PatchEmbed(config.patch_size, config.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, config.width))
        self.blocks = nn.ModuleList([VitBlock(config) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.width, eps=config.layer_norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, pixel_values: Tensor) -> Tensor:
        """``(B, 3, S, S)`` normalised images to ``(B, N + 1, width)`` tokens."""
        x = self.patch_embed(pixel_values)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = x + self.pos_embed[:, : x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


# ---------------------------------------------------------------- text (BLIP med.py)
class BertEmbeddings(nn.Module):
    """Word plus absolute position embeddings (BLIP has no token types)."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: Tensor) -> Tensor:
        """Embed ``(B, L)`` token ids."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions))


class BertSelfAttention(nn.Module):
    """``query``/``key``/``value``; keys and values of cross-attention come from the image."""

    def __init__(self, config: MedConfig, is_cross_attention: bool) -> None:
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        source = config.encoder_width if is_cross_attention else config.hidden_size
        self.heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(source, config.hidden_size)
        self.value = nn.Linear(source, config.hidden_size)

    def forward(self, hidden: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        """Attend from ``hidden`` to ``context`` (``mask``: True where attended)."""
        q = _heads(self.query(hidden), self.heads)
        k = _heads(self.key(context), self.heads)
        v = _heads(self.value(context), self.heads)
        return _merge(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


class BertSelfOutput(nn.Module):
    """``LayerNorm(dense(x) + residual)``."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        """Project and add the residual."""
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    """Attention with its output projection (named ``self`` and ``output`` as in med.py)."""

    def __init__(self, config: MedConfig, is_cross_attention: bool = False) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, is_cross_attention)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: Tensor, context: Tensor, mask: Tensor | None) -> Tensor:
        """Attend, project, add and normalise."""
        return self.output(self.self(hidden, context, mask), hidden)


class BertIntermediate(nn.Module):
    """``act(dense(x))``."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        from transformers.activations import ACT2FN

        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, x: Tensor) -> Tensor:
        """Expand and activate."""
        return self.intermediate_act_fn(self.dense(x))


class BertOutput(nn.Module):
    """``LayerNorm(dense(x) + residual)`` after the intermediate layer."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        """Project back and add the residual."""
        return self.LayerNorm(self.dense(x) + residual)


class BertLayer(nn.Module):
    """Self-attention, cross-attention to the image tokens, feed-forward."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.crossattention = BertAttention(config, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden: Tensor, mask: Tensor | None, image_embeds: Tensor) -> Tensor:
        """One ``mode='multimodal'`` layer of med.py."""
        hidden = self.attention(hidden, hidden, mask)
        hidden = self.crossattention(hidden, image_embeds, None)
        return self.output(self.intermediate(hidden), hidden)


class BertEncoder(nn.Module):
    """Stack of :class:`BertLayer` (named ``layer`` as in med.py)."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden: Tensor, mask: Tensor | None, image_embeds: Tensor) -> Tensor:
        """Run every layer."""
        for layer in self.layer:
            hidden = layer(hidden, mask, image_embeds)
        return hidden


class MedBertModel(nn.Module):
    """BLIP's text encoder (``BertModel(add_pooling_layer=False)`` of med.py), multimodal mode."""

    def __init__(self, config: MedConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)

    def forward(self, input_ids: Tensor, attention_mask: Tensor, image_embeds: Tensor) -> Tensor:
        """Last hidden states ``(B, L, hidden)``; padded tokens are never attended to."""
        mask = attention_mask.bool()[:, None, None, :]
        return self.encoder(self.embeddings(input_ids), mask, image_embeds)


class BLIP(nn.Module):
    """The ``blip`` part of ImageReward: encoders plus the (unused) projections."""

    def __init__(self, vision: BlipVisionConfig, text: MedConfig, embed_dim: int = 256) -> None:
        super().__init__()
        text = replace(text, encoder_width=vision.width)
        self.visual_encoder = BlipVisionTransformer(vision)
        self.text_encoder = MedBertModel(text)
        # Kept so that ImageReward.pt loads strictly; the score does not use them.
        self.vision_proj = nn.Linear(vision.width, embed_dim)
        self.text_proj = nn.Linear(text.hidden_size, embed_dim)


class ImageRewardModel(nn.Module):
    """ImageReward: BLIP image-grounded text encoding, then the MLP on the first token.

    Parameters
    ----------
    vision : BlipVisionConfig, optional
        Default: ViT-L/16 at 224 (ImageReward v1.0).
    text : MedConfig, optional
        Default: ImageReward's ``med_config.json``.
    """

    def __init__(
        self, vision: BlipVisionConfig | None = None, text: MedConfig | None = None
    ) -> None:
        super().__init__()
        vision = vision or BlipVisionConfig()
        text = text or MedConfig()
        self.blip = BLIP(vision, text)
        self.mlp = MLPHead(text.hidden_size)

    @property
    def image_size(self) -> int:
        """Input side length of the vision transformer."""
        return self.blip.visual_encoder.config.image_size

    def forward(self, pixel_values: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Raw MLP output ``(B,)`` in float32 (not yet standardised).

        Parameters
        ----------
        pixel_values : Tensor
            ``(B, 3, S, S)`` images normalised with the CLIP mean/std.
        input_ids, attention_mask : Tensor
            ``(B, L)`` BERT tokens of the prompts (``[CLS] ... [SEP]``).
        """
        image_embeds = self.blip.visual_encoder(pixel_values)
        text = self.blip.text_encoder(input_ids, attention_mask, image_embeds)
        features = text[:, 0, :].float()
        head_dtype = self.mlp.layers[0].weight.dtype
        return self.mlp(features.to(head_dtype)).float().reshape(-1)
