"""Differentiable image statistics: brightness, saturation, contrast.

Cheap, exact rewards whose optimum is known, used to test the aligner and as
simple style controls. Luminance uses the Rec. 601 weights.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Reward
from .registry import register_reward

__all__ = ["Brightness", "Contrast", "Saturation", "luminance"]

_REC601 = (0.299, 0.587, 0.114)


def luminance(images: Tensor) -> Tensor:
    """Per-pixel luminance ``Y = 0.299 R + 0.587 G + 0.114 B`` of ``(B, 3, H, W)`` images."""
    weights = torch.tensor(_REC601, dtype=images.dtype, device=images.device)
    return torch.einsum("bchw,c->bhw", images, weights)


class Brightness(Reward):
    """Mean luminance of each image, in [0, 1]."""

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Return ``mean_{h,w} Y``."""
        return luminance(images).flatten(1).mean(1)


class Saturation(Reward):
    """Mean HSV-style chroma ``max(R,G,B) - min(R,G,B)`` of each image, in [0, 1]."""

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Return ``mean_{h,w} (max_c x - min_c x)``."""
        chroma = images.amax(dim=1) - images.amin(dim=1)
        return chroma.flatten(1).mean(1)


class Contrast(Reward):
    """Standard deviation of luminance over each image, in [0, 0.5]."""

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Return ``std_{h,w} Y`` (population standard deviation)."""
        return luminance(images).flatten(1).std(1, correction=0)


register_reward("brightness", "mean luminance (differentiable, no weights)")(Brightness)
register_reward("saturation", "mean chroma max(RGB) - min(RGB) (differentiable, no weights)")(
    Saturation
)
register_reward("contrast", "standard deviation of luminance (differentiable, no weights)")(
    Contrast
)
