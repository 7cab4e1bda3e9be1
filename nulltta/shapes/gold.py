"""The gold reward ``shapes-gold``: the true ShapesBench preference, measured from pixels.

    gold(x, prompt) = match(x, prompt) * (0.5 * size_term(s) + 0.5 * centring(cx, cy))

It plays the human rater: it labels the proxies' training pairs and evaluates
every method, and no method ever optimises it (``docs/concepts/shapesbench.md``).
Each step is a small pure function below, with its formula:

- :func:`coverage`: each pixel's projection on the prompt's colour line,
  ``m = clip(<x - b, f - b> / ||f - b||^2, 0, 1)``;
- :func:`ramp`: ``m' = clip((m - 0.1) / 0.8, 0, 1)``;
- :func:`measure`: ``area = mean(m')``, ``s = sqrt(area / k_shape)`` and the
  centroid of ``m'`` corrected to the bounding-box centre
  (:func:`shape_constants` measures ``k_shape`` and the offset from the renderer);
- :func:`size_term` and :func:`centring`; :func:`gate`; :func:`gold_score`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from nulltta.rewards.base import Reward
from nulltta.rewards.registry import register_reward

from .world import (
    BACKGROUND_RGB,
    COLOR_RGB,
    IMAGE_SIZE,
    MARGIN,
    MAX_SIZE,
    MIN_SIZE,
    SHAPES,
    coverage_masks,
    parse_prompt,
)

__all__ = [
    "D_MAX",
    "MIN_AREA",
    "Measurement",
    "ShapesGold",
    "centring",
    "coverage",
    "gate",
    "gold_from_geometry",
    "gold_score",
    "measure",
    "ramp",
    "shape_constants",
    "size_term",
]

#: Farthest a smallest shape's centre can be from the image centre, ``hypot(0.32, 0.32)``.
D_MAX = math.hypot(0.5 - MIN_SIZE / 2 - MARGIN, 0.5 - MIN_SIZE / 2 - MARGIN)
#: Smallest segmented area (fraction of the image) the gate accepts.
MIN_AREA = 0.02
#: Size at which ``size_term`` falls back to zero.
_SIZE_ZERO = 0.95


@dataclass
class Measurement:
    """What the segmentation reads from a batch of images; every field is ``(B,)``.

    Attributes
    ----------
    area : Tensor
        Mean of the ramped coverage ``m'`` (fraction of the image).
    size : Tensor
        ``sqrt(area / k_shape)``, the shape's extent as a fraction of the side.
    cx, cy : Tensor
        Centre of the shape's bounding box (``y`` down); ``0.5`` when ``area`` is 0.
    """

    area: Tensor
    size: Tensor
    cx: Tensor
    cy: Tensor


@lru_cache(maxsize=1)
def shape_constants() -> dict[str, tuple[float, float]]:
    """``(k_shape, offset)`` of each shape, measured from the renderer.

    ``k_shape`` is the area of a shape of extent 1, the least-squares fit of
    ``area = k s^2`` over rendered coverage masks (sizes 0.30-0.75, 46 values,
    centred); ``offset`` is the mean of ``(centroid_y - box_centre_y) / s``
    (about ``0.866 / 6`` for the triangle, whose centroid lies below its box
    centre; zero for the symmetric shapes).
    """
    size = np.linspace(MIN_SIZE, MAX_SIZE, 46, dtype=np.float32)
    centre = np.full_like(size, 0.5)
    grid = (np.arange(IMAGE_SIZE, dtype=np.float64) + 0.5) / IMAGE_SIZE
    out = {}
    for index, name in enumerate(SHAPES):
        masks = coverage_masks(np.full(len(size), index), size, centre, centre).astype(np.float64)
        area = masks.mean((1, 2))
        k = float((area * size**2).sum() / (size.astype(np.float64) ** 4).sum())
        cy = (masks * grid[None, :, None]).sum((1, 2)) / masks.sum((1, 2))
        out[name] = (k, float(((cy - 0.5) / size).mean()))
    return out


def coverage(images: Tensor, foreground: Tensor, background: Tensor) -> Tensor:
    """Per-pixel coverage ``m = clip(<x - b, f - b> / ||f - b||^2, 0, 1)``.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    foreground, background : Tensor
        ``(B, 3)`` RGB of the prompt's shape colour ``f`` and background ``b``.

    Returns
    -------
    Tensor
        ``(B, H, W)``; the exact anti-aliased coverage of a rendered image.
    """
    line = (foreground - background)[:, :, None, None]
    dot = ((images - background[:, :, None, None]) * line).sum(1)
    return (dot / line.pow(2).sum(1)).clamp(0, 1)


def ramp(m: Tensor) -> Tensor:
    """``m' = clip((m - 0.1) / 0.8, 0, 1)``: drops faint noise, keeps edge area on average."""
    return ((m - 0.1) / 0.8).clamp(0, 1)


def _colours(prompts: list[str], device: torch.device) -> tuple[Tensor, Tensor, list[str]]:
    parsed = [parse_prompt(p) for p in prompts]
    fg = torch.tensor([COLOR_RGB[c] for _, c, _ in parsed], device=device)
    bg = torch.tensor([BACKGROUND_RGB[b] for _, _, b in parsed], device=device)
    return fg, bg, [s for s, _, _ in parsed]


def _to_32(images: Tensor) -> Tensor:
    if images.shape[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
        return images
    return F.interpolate(
        images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False
    )


def measure(images: Tensor, prompts: list[str], keep_gradient: bool = False) -> Measurement:
    """Segment each image for its prompt's colours; read area, size and box centre.

    ``area = mean(m')``, ``s = sqrt(area / k_shape)``, centre = centroid of
    ``m'`` (pixel centres at ``(j + 0.5) / 32``) minus ``offset * s`` in ``y``
    (:func:`shape_constants`). Images of another resolution are resized to
    32x32 first (bilinear, antialiased).

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    prompts : list of str
        One prompt (or caption) per image; its colours and shape are used.
    keep_gradient : bool, default=False
        Keep the images' autograd graph, so the measurements can be
        differentiated (for diagnostics that optimise against gold's terms;
        gold itself is evaluated without it). The values are the same.

    Returns
    -------
    Measurement
    """
    x = _to_32((images if keep_gradient else images.detach()).float())
    fg, bg, shapes = _colours(prompts, x.device)
    m = ramp(coverage(x, fg, bg))
    constants = shape_constants()
    k = torch.tensor([constants[s][0] for s in shapes], device=x.device)
    offset = torch.tensor([constants[s][1] for s in shapes], device=x.device)
    area = m.mean((1, 2))
    # sqrt's gradient is infinite at 0: an empty segmentation gets size 0 with a zero gradient.
    positive = (area / k).clamp_min(torch.finfo(area.dtype).tiny)
    size = torch.where(area > 0, positive.sqrt(), torch.zeros_like(area))
    grid = (torch.arange(IMAGE_SIZE, device=x.device, dtype=x.dtype) + 0.5) / IMAGE_SIZE
    mass = m.sum((1, 2))
    safe = mass.clamp_min(1e-12)
    cx = torch.where(mass > 0, (m * grid[None, None, :]).sum((1, 2)) / safe, 0.5)
    cy = torch.where(mass > 0, (m * grid[None, :, None]).sum((1, 2)) / safe - offset * size, 0.5)
    return Measurement(area=area, size=size, cx=cx, cy=cy)


def size_term(s: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``clip(min((s - 0.30) / 0.45, 1 - (s - 0.75) / 0.20), 0, 1)``.

    Rises from 0 at the smallest size the world draws to 1 at the largest,
    then falls to 0 at 0.95 (a shape that outgrows the world).
    """
    lib = torch if isinstance(s, Tensor) else np
    rising = (s - MIN_SIZE) / (MAX_SIZE - MIN_SIZE)
    falling = 1 - (s - MAX_SIZE) / (_SIZE_ZERO - MAX_SIZE)
    return lib.clip(lib.minimum(rising, falling), 0, 1)


def centring(cx: Tensor | np.ndarray, cy: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """``clip(1 - d / d_max, 0, 1)`` with ``d = hypot(cx - 0.5, cy - 0.5)``.

    ``d_max = hypot(0.32, 0.32)`` (:data:`D_MAX`), the farthest a smallest
    shape's centre can be from the image centre.
    """
    lib = torch if isinstance(cx, Tensor) else np
    return lib.clip(1 - lib.hypot(cx - 0.5, cy - 0.5) / D_MAX, 0, 1)


def gold_from_geometry(
    size: Tensor | np.ndarray, cx: Tensor | np.ndarray, cy: Tensor | np.ndarray
) -> Tensor | np.ndarray:
    """``0.5 * size_term(size) + 0.5 * centring(cx, cy)``: the gold of a matching image."""
    return 0.5 * size_term(size) + 0.5 * centring(cx, cy)


def gate(images: Tensor, prompts: list[str], area: Tensor | None = None) -> Tensor:
    """``1.0`` where the classifier reads all three prompt attributes and ``area >= 0.02``.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    prompts : list of str
        One prompt per image.
    area : Tensor, optional
        The segmented area (:func:`measure`), if already computed.

    Returns
    -------
    Tensor
        ``(B,)`` float in ``{0, 1}``.
    """
    from .rewards import fidelity_accuracy

    if area is None:
        area = measure(images, prompts).area
    return fidelity_accuracy(images.detach().float(), prompts) * (area >= MIN_AREA).float()


@torch.no_grad()
def gold_score(images: Tensor, prompts: list[str]) -> Tensor:
    """The gold reward of each image for its prompt, in ``[0, 1]``.

    ``gate * (0.5 * size_term(s) + 0.5 * centring(cx, cy))`` with ``s, cx, cy``
    from :func:`measure`.

    Returns
    -------
    Tensor
        ``(B,)`` float32 (not differentiable).
    """
    m = measure(images, prompts)
    score = gold_from_geometry(m.size, m.cx, m.cy)
    return (gate(images, prompts, m.area) * score).float()


class ShapesGold(Reward):
    """The gold ShapesBench reward (:func:`gold_score`): for evaluation and labels only.

    Not differentiable (the gate is an argmax), prompt-dependent, in ``[0, 1]``.
    """

    is_differentiable = False
    requires_prompts = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Gold reward per image, ``(B,)``."""
        assert prompts is not None
        return gold_score(images, prompts).to(images.device)


def _available() -> tuple[bool, str]:
    from .scorers import scorer_path

    path = scorer_path("classifier")
    return (True, str(path.parent)) if path.is_file() else (False, f"missing {path}")


register_reward(
    "shapes-gold",
    "ShapesBench: the true preference, measured from pixels (size and centring, gated by "
    "the prompt); for evaluation only",
    needs="shipped ShapesBench classifier weights",
    is_available=_available,
)(ShapesGold)
