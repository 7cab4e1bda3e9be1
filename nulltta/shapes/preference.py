"""The two prompt-conditioned proxy rewards' networks (image and prompt in, score out).

Both are trained with a Bradley-Terry loss on a fixed set of simulated
pairwise choices labelled by the gold reward
(:mod:`nulltta.shapes.train_preference`), then mapped to gold's scale by an
affine fit (the ``scale`` and ``bias`` buffers, stored with the weights):

- :class:`TwoTowerPreference` (``shapes-preference``, the target, a PickScore
  analogue): a CNN image tower and a prompt tower (the three attribute
  words' embeddings, summed, then an MLP); score = scaled dot product;
- :class:`CoordConvPreference` (``shapes-preference-heldout``): a CoordConv
  image tower whose pooled features are concatenated with the prompt's
  embedding and read by an MLP head.

Inputs are ``(B, 3, H, W)`` images in ``[0, 1]`` (resized to 32x32 with
differentiable torch ops) and ``(B, 3)`` int64 attribute indices
(:func:`nulltta.shapes.scorers.prompt_labels`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .scorers import to_model_input
from .world import BACKGROUNDS, COLORS, IMAGE_SIZE, SHAPES

__all__ = [
    "CalibratedPreference",
    "CoordConvPreference",
    "PromptEmbedding",
    "TwoTowerPreference",
]


class PromptEmbedding(nn.Module):
    """One learned vector per attribute word: shape, colour and background tables.

    Parameters
    ----------
    dim : int
        Width of each word's vector.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.shape = nn.Embedding(len(SHAPES), dim)
        self.color = nn.Embedding(len(COLORS), dim)
        self.background = nn.Embedding(len(BACKGROUNDS), dim)

    def forward(self, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(shape, colour, background)`` vectors ``(B, dim)`` of ``(B, 3)`` labels."""
        return self.shape(labels[:, 0]), self.color(labels[:, 1]), self.background(labels[:, 2])


class CalibratedPreference(nn.Module):
    """Base of both proxies: ``score = scale * raw + bias``, the affine map fitted to gold.

    Subclasses implement :meth:`raw`, the Bradley-Terry score.
    """

    scale: Tensor
    bias: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("bias", torch.zeros(()))

    def raw(self, images: Tensor, labels: Tensor) -> Tensor:
        """Bradley-Terry score (no scale), ``(B,)``."""
        raise NotImplementedError

    def forward(self, images: Tensor, labels: Tensor) -> Tensor:
        """Calibrated score ``scale * raw + bias`` on gold's scale, ``(B,)``."""
        return self.scale * self.raw(images, labels) + self.bias


class TwoTowerPreference(CalibratedPreference):
    """Target proxy: CNN image tower and prompt tower, score = scaled dot product.

    Image tower: three stride-2 3x3 conv blocks (32, 64, 64 channels; 32 -> 4
    px), flattened (so position is kept), MLP to ``dim``. Prompt tower: the
    three attribute embeddings summed, MLP to ``dim``. ``raw = <image, prompt> / sqrt(dim)``.
    """

    def __init__(self, dim: int = 64, word_dim: int = 32) -> None:
        super().__init__()
        self.dim = dim

        def block(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 2, 1), nn.GroupNorm(8, c_out), nn.SiLU())

        self.image_tower = nn.Sequential(
            block(3, 32),
            block(32, 64),
            block(64, 64),
            nn.Flatten(),
            nn.Linear(64 * 16, 128),
            nn.SiLU(),
            nn.Linear(128, dim),
        )
        self.words = PromptEmbedding(word_dim)
        self.prompt_tower = nn.Sequential(nn.Linear(word_dim, 128), nn.SiLU(), nn.Linear(128, dim))

    def raw(self, images: Tensor, labels: Tensor) -> Tensor:
        """``<image_tower(x), prompt_tower(sum of word vectors)> / sqrt(dim)``, ``(B,)``."""
        image = self.image_tower(to_model_input(images))
        shape, color, background = self.words(labels)
        prompt = self.prompt_tower(shape + color + background)
        return (image * prompt).sum(1) / math.sqrt(self.dim)


class CoordConvPreference(CalibratedPreference):
    """Held-out proxy: CoordConv image tower, prompt embedding concatenated, MLP head.

    Image tower: the image plus two coordinate channels (x and y ramps in
    [-1, 1]); a 3x3 conv (24 channels), two stride-2 4x4 convs (48, 64;
    32 -> 8 px), global average pooling. The prompt is the concatenation of
    its three attribute embeddings; ``raw = head([pooled, prompt])``.
    """

    def __init__(self, word_dim: int = 16) -> None:
        super().__init__()
        self.image_tower = nn.Sequential(
            nn.Conv2d(5, 24, 3, 1, 1),
            nn.GroupNorm(8, 24),
            nn.GELU(),
            nn.Conv2d(24, 48, 4, 2, 1),
            nn.GroupNorm(8, 48),
            nn.GELU(),
            nn.Conv2d(48, 64, 4, 2, 1),
            nn.GroupNorm(8, 64),
            nn.GELU(),
        )
        self.words = PromptEmbedding(word_dim)
        self.head = nn.Sequential(
            nn.Linear(64 + 3 * word_dim, 128), nn.GELU(), nn.Linear(128, 64), nn.GELU(),
            nn.Linear(64, 1),
        )  # fmt: skip

    def raw(self, images: Tensor, labels: Tensor) -> Tensor:
        """``head([mean-pooled CoordConv features, shape, colour, background vectors])``."""
        x = to_model_input(images)
        ramp = torch.linspace(-1, 1, IMAGE_SIZE, device=x.device, dtype=x.dtype)
        coords = torch.stack(torch.meshgrid(ramp, ramp, indexing="ij")).expand(
            x.shape[0], 2, -1, -1
        )
        pooled = self.image_tower(torch.cat([x, coords], 1)).mean((2, 3))
        return self.head(torch.cat([pooled, *self.words(labels)], 1)).squeeze(1)
