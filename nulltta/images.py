"""Conversions between image tensors in [0, 1] and PIL images."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["format_images", "to_pil", "to_tensor"]


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, 3, H, W)`` tensor in [0, 1] to PIL images (rounded like diffusers)."""
    arrays = (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255).round()
    return [Image.fromarray(array.astype(np.uint8)) for array in arrays]


def to_tensor(images: Any) -> torch.Tensor:
    """PIL images, a list of them, or a tensor, as a ``(B, 3, H, W)`` float tensor in [0, 1]."""
    if isinstance(images, torch.Tensor):
        return images if images.ndim == 4 else images.unsqueeze(0)
    if isinstance(images, Image.Image):
        images = [images]
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def format_images(images: torch.Tensor, output_type: str) -> list[Image.Image] | torch.Tensor:
    """Return ``images`` as a CPU tensor (``"pt"``) or a list of PIL images (``"pil"``)."""
    if output_type == "pt":
        return images.cpu()
    if output_type == "pil":
        return to_pil(images)
    raise ValueError(f"output_type={output_type!r}; use 'pil' or 'pt'")
