"""JPEG compressibility: ``-bytes / 1000`` at PIL quality 95, a black-box reward."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .base import Reward
from .registry import register_reward

__all__ = ["JpegCompressibility", "jpeg_size_kb"]


def jpeg_size_kb(images: Tensor, quality: int = 95) -> Tensor:
    """Size in kilobytes (1000 bytes) of each image saved as JPEG at ``quality``.

    Images are quantised to uint8 the way PIL would save a PNG of them.
    """
    arrays = (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)
    arrays = arrays.permute(0, 2, 3, 1).cpu().numpy()
    sizes = []
    for array in arrays:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="JPEG", quality=quality)
        sizes.append(buffer.tell() / 1000.0)
    return torch.tensor(sizes, dtype=torch.float32, device=images.device)


class JpegCompressibility(Reward):
    """Negative JPEG file size in kB: smaller files score higher.

    Not differentiable (the encoder is a black box), so the aligner optimises
    it with zero-order gradient estimates.

    Parameters
    ----------
    quality : int, default=95
        PIL JPEG quality, as in the released code.

    """

    is_differentiable = False

    def __init__(self, quality: int = 95, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 1 <= quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {quality}")
        self.quality = quality

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Return ``-bytes / 1000`` per image."""
        return -jpeg_size_kb(images, self.quality)


register_reward("jpeg", "negative JPEG size in kB at quality 95 (black box: zero-order)")(
    JpegCompressibility
)
