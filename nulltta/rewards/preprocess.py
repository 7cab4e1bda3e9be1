"""Torch-only image preprocessing shared by the learned rewards.

Every learned reward in nulltta sees images the way its reference code does
(resize, crop or pad, CLIP mean/std) but computes it with torch ops on
``(B, 3, H, W)`` tensors in ``[0, 1]``, so gradients reach the input image.
Resizing is ``F.interpolate(..., mode="bicubic", antialias=True)``: the
antialiased bicubic kernel of PyTorch uses the same ``a = -0.5`` cubic as
PIL, so it follows the PIL/torchvision ``Resize`` of the reference code up to
PIL's rounding to uint8.

Sizes follow torchvision: resizing the shortest side to ``s`` gives the long
side ``int(s * long / short)``; resizing the longest side gives
``round(dim * s / long)``; centre crops start at ``round((dim - s) / 2)``;
padding puts ``pad // 2`` before and the rest after.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "center_crop",
    "normalize",
    "pad_to_square",
    "resize",
    "resize_longest_side_pad",
    "resize_shortest_side_center_crop",
]

#: Mean of the OpenAI CLIP training images, shared by PickScore, HPSv2,
#: CLIPScore, the LAION aesthetic predictor and ImageReward (BLIP).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
#: Standard deviation matching :data:`CLIP_MEAN`.
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def _check_batch(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")


def resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize ``(B, C, H, W)`` images to ``size = (height, width)``.

    Bicubic with antialiasing (PIL's kernel); returns the input unchanged
    when it already has that size.

    Parameters
    ----------
    images : Tensor
        Float images, any range.
    size : tuple of int
        Target ``(height, width)``.

    Returns
    -------
    Tensor
        ``(B, C, height, width)``, differentiable w.r.t. ``images``.
    """
    _check_batch(images)
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"size must be positive, got {size}")
    if tuple(images.shape[-2:]) == (height, width):
        return images
    return F.interpolate(
        images, size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )


def center_crop(images: Tensor, size: int) -> Tensor:
    """Crop the central ``size x size`` window (torchvision's offsets).

    Raises
    ------
    ValueError
        If an image side is shorter than ``size``.
    """
    _check_batch(images)
    height, width = images.shape[-2:]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from an image of {height}x{width}")
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def pad_to_square(images: Tensor, size: int, fill: float = 0.0) -> Tensor:
    """Pad images of sides at most ``size`` to ``size x size`` with ``fill``.

    ``pad // 2`` goes before (top/left) and the rest after, as in HPSv2's
    ``ResizeMaxSize`` and open_clip's ``CenterCropOrPad``.
    """
    _check_batch(images)
    height, width = images.shape[-2:]
    if height > size or width > size:
        raise ValueError(f"cannot pad an image of {height}x{width} to {size}x{size}")
    pad_h, pad_w = size - height, size - width
    if pad_h == 0 and pad_w == 0:
        return images
    padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    return F.pad(images, padding, mode="constant", value=fill)


def resize_shortest_side_center_crop(images: Tensor, size: int) -> Tensor:
    """Resize the shortest side to ``size``, then centre-crop ``size x size``.

    The CLIP preprocessing of PickScore, CLIPScore, the aesthetic predictor
    and ImageReward (torchvision ``Resize(size)`` + ``CenterCrop(size)``).

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)`` float images.
    size : int
        Output side length.

    Returns
    -------
    Tensor
        ``(B, C, size, size)``.
    """
    _check_batch(images)
    height, width = int(images.shape[-2]), int(images.shape[-1])
    if height <= width:
        new_size = (size, int(size * width / height))
    else:
        new_size = (int(size * height / width), size)
    return center_crop(resize(images, new_size), size)


def resize_longest_side_pad(images: Tensor, size: int, fill: float = 0.0) -> Tensor:
    """Resize the longest side to ``size``, keep the aspect, pad to a square.

    The HPSv2 evaluation transform (``ResizeMaxSize(size, fill=0)``): the
    padding value is in pixel space, before normalisation (0 is black).

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)`` float images.
    size : int
        Output side length.
    fill : float, default=0.0
        Padding value.

    Returns
    -------
    Tensor
        ``(B, C, size, size)``.
    """
    _check_batch(images)
    height, width = int(images.shape[-2]), int(images.shape[-1])
    scale = size / max(height, width)
    new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return pad_to_square(resize(images, new_size), size, fill)


def normalize(
    images: Tensor,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> Tensor:
    """Return ``(images - mean) / std`` per channel (CLIP's constants by default)."""
    _check_batch(images)
    if len(mean) != images.shape[1] or len(std) != images.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel ({images.shape[1]}), "
            f"got {len(mean)} and {len(std)}"
        )
    mean_t = torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean_t) / std_t
