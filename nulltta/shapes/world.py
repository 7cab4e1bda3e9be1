"""The ShapesBench world: 32x32 images of one coloured shape on a plain background.

Prompts name three attributes, ``"a red circle on a white background"``; the
shape's size and position vary at random. Training captions may also name
them with a size word and a position phrase, ``"a large red circle in the top
left on a white background"`` (their distribution is in
:mod:`nulltta.shapes.captions`). Every image is rendered at 4x resolution and
box-filtered down (anti-aliasing).

Coordinates are fractions of the image side: ``size`` is the shape's extent
(diameter of the circle, side of the square, width of the triangle and the
cross) and ``(cx, cy)`` its centre, ``x`` to the right and ``y`` down.

The true preference of an image (the gold reward) is measured from its pixels
in :mod:`nulltta.shapes.gold`; learned proxies of it live in
:mod:`nulltta.shapes.preference`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .prompts import (
    BACKGROUNDS,
    COLORS,
    POSITION_PHRASES,
    SHAPES,
    SIZE_WORDS,
    VOCABULARY,
    PromptError,
    PromptParts,
    all_prompts,
    check_prompt,
    make_caption,
    make_prompt,
    parse_caption,
    parse_prompt,
)

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_RGB",
    "COLORS",
    "COLOR_RGB",
    "IMAGE_SIZE",
    "MARGIN",
    "MAX_SIZE",
    "MIN_SIZE",
    "POSITION_PHRASES",
    "SHAPES",
    "SIZE_WORDS",
    "VOCABULARY",
    "PromptError",
    "PromptParts",
    "ShapeBatch",
    "all_prompts",
    "check_prompt",
    "coverage_masks",
    "make_caption",
    "make_prompt",
    "parse_caption",
    "parse_prompt",
    "render",
    "render_batch",
    "sample_attributes",
    "sample_batch",
]

IMAGE_SIZE = 32
SUPERSAMPLE = 4
COLOR_RGB: dict[str, tuple[float, float, float]] = {
    "red": (0.88, 0.10, 0.10),
    "green": (0.12, 0.70, 0.18),
    "blue": (0.12, 0.25, 0.92),
    "yellow": (0.98, 0.86, 0.10),
    "cyan": (0.10, 0.85, 0.92),
    "magenta": (0.88, 0.12, 0.82),
}
BACKGROUND_RGB: dict[str, tuple[float, float, float]] = {
    "white": (0.96, 0.96, 0.96),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.50, 0.50, 0.50),
    "brown": (0.45, 0.27, 0.11),
}
MIN_SIZE = 0.30
MAX_SIZE = 0.75
#: Smallest distance between a shape's bounding box and the image border.
MARGIN = 0.03


@dataclass
class ShapeBatch:
    """Images with the attributes that made them.

    Attributes
    ----------
    images : Tensor
        ``(N, 3, 32, 32)`` float32 in ``[0, 1]``.
    shape, color, background : Tensor
        ``(N,)`` int64 indices into :data:`SHAPES`, :data:`COLORS`, :data:`BACKGROUNDS`.
    size, cx, cy : Tensor
        ``(N,)`` float32 geometry, fractions of the image side.
    prompts : list of str
        One prompt (or caption) per image.
    """

    images: Tensor
    shape: Tensor
    color: Tensor
    background: Tensor
    size: Tensor
    cx: Tensor
    cy: Tensor
    prompts: list[str]


def coverage_masks(
    shape_idx: np.ndarray, size: np.ndarray, cx: np.ndarray, cy: np.ndarray
) -> np.ndarray:
    """Anti-aliased coverage masks ``(N, 32, 32)`` in [0, 1] (the renderer's shapes).

    Parameters
    ----------
    shape_idx : ndarray of int
        ``(N,)`` indices into :data:`SHAPES`.
    size, cx, cy : ndarray of float
        ``(N,)`` geometry, fractions of the image side.
    """
    res = IMAGE_SIZE * SUPERSAMPLE
    grid = (np.arange(res, dtype=np.float32) + 0.5) / res
    x = grid[None, None, :] - cx[:, None, None]
    y = grid[None, :, None] - cy[:, None, None]
    half = (size / 2)[:, None, None]
    circle = x**2 + y**2 <= half**2
    # A square of the same area as the circle looks the same size.
    sq_half = half * 0.886
    square = (np.abs(x) <= sq_half) & (np.abs(y) <= sq_half)
    # Equilateral triangle pointing up, width = size, centred on its bounding box.
    height = 2 * half * 0.866
    ty = y + height / 2  # 0 at the apex, `height` at the base
    triangle = (ty >= 0) & (ty <= height) & (np.abs(x) <= ty / height * half)
    arm = half / 3
    cross = ((np.abs(x) <= half) & (np.abs(y) <= arm)) | ((np.abs(y) <= half) & (np.abs(x) <= arm))
    stack = np.stack([circle, square, triangle, cross])  # (4, N, res, res)
    fine = stack[shape_idx, np.arange(len(shape_idx))].astype(np.float32)
    n = len(shape_idx)
    return fine.reshape(n, IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE).mean(axis=(2, 4))


def render_batch(
    shape: np.ndarray,
    color: np.ndarray,
    background: np.ndarray,
    size: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
) -> np.ndarray:
    """Render many images from attribute indices and geometry.

    Parameters
    ----------
    shape, color, background : ndarray of int
        ``(N,)`` indices into :data:`SHAPES`, :data:`COLORS`, :data:`BACKGROUNDS`.
    size, cx, cy : ndarray of float
        ``(N,)`` geometry, fractions of the image side.

    Returns
    -------
    ndarray
        ``(N, 3, 32, 32)`` float32 in ``[0, 1]``.
    """
    fg = np.array([COLOR_RGB[c] for c in COLORS], dtype=np.float32)[np.asarray(color)]
    bg = np.array([BACKGROUND_RGB[b] for b in BACKGROUNDS], dtype=np.float32)[
        np.asarray(background)
    ]
    mask = coverage_masks(
        np.asarray(shape),
        np.asarray(size, dtype=np.float32),
        np.asarray(cx, dtype=np.float32),
        np.asarray(cy, dtype=np.float32),
    )[:, None]
    return mask * fg[:, :, None, None] + (1 - mask) * bg[:, :, None, None]


def render(shape: str, color: str, background: str, size: float, cx: float, cy: float) -> Tensor:
    """Render one image.

    Parameters
    ----------
    shape, color, background : str
        Names from :data:`SHAPES`, :data:`COLORS`, :data:`BACKGROUNDS`.
    size : float
        Extent of the shape as a fraction of the image side.
    cx, cy : float
        Centre of the shape, fractions of the image side (``y`` down).

    Returns
    -------
    Tensor
        ``(3, 32, 32)`` float32 in ``[0, 1]``.
    """
    make_prompt(shape, color, background)  # validates the names
    image = render_batch(
        np.array([SHAPES.index(shape)]),
        np.array([COLORS.index(color)]),
        np.array([BACKGROUNDS.index(background)]),
        np.array([size]),
        np.array([cx]),
        np.array([cy]),
    )
    return torch.from_numpy(image[0])


def sample_attributes(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw ``n`` uniform attribute sets (indices and geometry) from ``rng``."""
    size = rng.uniform(MIN_SIZE, MAX_SIZE, n).astype(np.float32)
    low, high = size / 2 + MARGIN, 1 - size / 2 - MARGIN
    return {
        "shape": rng.integers(0, len(SHAPES), n),
        "color": rng.integers(0, len(COLORS), n),
        "background": rng.integers(0, len(BACKGROUNDS), n),
        "size": size,
        "cx": rng.uniform(low, high).astype(np.float32),
        "cy": rng.uniform(low, high).astype(np.float32),
    }


def sample_batch(n: int, seed: int | np.random.Generator = 0) -> ShapeBatch:
    """Draw ``n`` random images with their attributes and prompts.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int or numpy Generator
        The same seed always gives the same batch.

    Returns
    -------
    ShapeBatch
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    attrs = sample_attributes(n, rng)
    images = render_batch(**attrs)
    prompts = [
        make_prompt(SHAPES[s], COLORS[c], BACKGROUNDS[b])
        for s, c, b in zip(attrs["shape"], attrs["color"], attrs["background"], strict=True)
    ]
    return ShapeBatch(
        images=torch.from_numpy(images),
        shape=torch.as_tensor(attrs["shape"], dtype=torch.int64),
        color=torch.as_tensor(attrs["color"], dtype=torch.int64),
        background=torch.as_tensor(attrs["background"], dtype=torch.int64),
        size=torch.from_numpy(attrs["size"]),
        cx=torch.from_numpy(attrs["cx"]),
        cy=torch.from_numpy(attrs["cy"]),
        prompts=prompts,
    )
