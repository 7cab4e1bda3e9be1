"""Training captions that name the free attributes, and images drawn to match them.

A caption is drawn first and the image then drawn to match it
(``docs/concepts/shapesbench.md``, "Captions"):

- with probability 0.5 a size word, ``small`` (size uniform in
  ``[0.30, 0.42]``) or ``large`` (``[0.63, 0.75]``), equally likely; otherwise
  the size is drawn from the base range ``[0.30, 0.75]``;
- with probability 0.5, independently, one of the five position phrases,
  equally likely. Positions are drawn in coordinates relative to the
  feasible range of the drawn size, ``u = (cx - lo) / (hi - lo)`` with
  ``lo = size / 2 + 0.03`` and ``hi = 1 - lo`` (likewise ``v`` for ``cy``,
  ``y`` down): centre ``u, v in [0.4, 0.6]``, left ``u in [0, 0.3]``, right
  ``u in [0.7, 1]``, top ``v in [0, 0.3]``, bottom ``v in [0.7, 1]``;
  otherwise ``u, v`` are uniform in ``[0, 1]`` (the base distribution).

The renderer and the base distribution (:func:`nulltta.shapes.world.sample_batch`)
are unchanged. The training loop replaces a caption by ``""`` with
probability :data:`EMPTY_PROB`, so that the text encoder on ``""`` is the
unconditional embedding CFG needs.
"""

from __future__ import annotations

import numpy as np
import torch

from .world import (
    BACKGROUNDS,
    COLORS,
    MARGIN,
    MAX_SIZE,
    MIN_SIZE,
    POSITION_PHRASES,
    SHAPES,
    SIZE_WORDS,
    PromptParts,
    ShapeBatch,
    render_batch,
)

__all__ = [
    "EMPTY_PROB",
    "POSITION_PROB",
    "POSITION_RANGES",
    "SIZE_PROB",
    "SIZE_RANGES",
    "feasible_range",
    "from_relative",
    "sample_captioned_batch",
    "sample_captions",
    "sample_geometry",
    "to_relative",
]

SIZE_PROB = 0.5
POSITION_PROB = 0.5
EMPTY_PROB = 0.1
#: Size range of each size word (the base range when no word is given).
SIZE_RANGES: dict[str | None, tuple[float, float]] = {
    None: (MIN_SIZE, MAX_SIZE),
    "small": (0.30, 0.42),
    "large": (0.63, 0.75),
}
#: ``(u range, v range)`` of each position phrase, relative to the feasible range.
POSITION_RANGES: dict[str | None, tuple[tuple[float, float], tuple[float, float]]] = {
    None: ((0.0, 1.0), (0.0, 1.0)),
    "in the centre": ((0.4, 0.6), (0.4, 0.6)),
    "in the top left": ((0.0, 0.3), (0.0, 0.3)),
    "in the top right": ((0.7, 1.0), (0.0, 0.3)),
    "in the bottom left": ((0.0, 0.3), (0.7, 1.0)),
    "in the bottom right": ((0.7, 1.0), (0.7, 1.0)),
}


def feasible_range(size: float | np.ndarray) -> tuple[float | np.ndarray, float | np.ndarray]:
    """``(lo, hi)`` of a centre coordinate: ``lo = size / 2 + 0.03``, ``hi = 1 - lo``."""
    lo = np.asarray(size) / 2 + MARGIN
    return lo, 1 - lo


def to_relative(centre: float | np.ndarray, size: float | np.ndarray) -> np.ndarray:
    """Relative coordinate ``u = (c - lo) / (hi - lo)`` of a centre coordinate ``c``."""
    lo, hi = feasible_range(size)
    return (np.asarray(centre) - lo) / (hi - lo)


def from_relative(u: float | np.ndarray, size: float | np.ndarray) -> np.ndarray:
    """Centre coordinate ``c = lo + u (hi - lo)`` of a relative coordinate ``u``."""
    lo, hi = feasible_range(size)
    return lo + np.asarray(u) * (hi - lo)


def sample_captions(
    n: int,
    rng: np.random.Generator,
    size_prob: float = SIZE_PROB,
    position_prob: float = POSITION_PROB,
) -> list[PromptParts]:
    """Draw ``n`` captions: uniform attributes, each optional word with its probability.

    Parameters
    ----------
    n : int
        Number of captions.
    rng : numpy Generator
        Source of randomness.
    size_prob, position_prob : float, default=0.5
        Probability of a size word and, independently, of a position phrase.

    Returns
    -------
    list of PromptParts
    """
    shape = rng.integers(0, len(SHAPES), n)
    color = rng.integers(0, len(COLORS), n)
    background = rng.integers(0, len(BACKGROUNDS), n)
    has_size = rng.random(n) < size_prob
    size_word = rng.integers(0, len(SIZE_WORDS), n)
    has_position = rng.random(n) < position_prob
    position = rng.integers(0, len(POSITION_PHRASES), n)
    return [
        PromptParts(
            SHAPES[shape[i]],
            COLORS[color[i]],
            BACKGROUNDS[background[i]],
            SIZE_WORDS[size_word[i]] if has_size[i] else None,
            POSITION_PHRASES[position[i]] if has_position[i] else None,
        )
        for i in range(n)
    ]


def sample_geometry(captions: list[PromptParts], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw size and centre for each caption, as the caption's words say.

    Returns
    -------
    dict
        ``size``, ``cx``, ``cy``: ``(N,)`` float32 arrays.
    """
    size_lo, size_hi = np.array([SIZE_RANGES[c.size] for c in captions]).reshape(-1, 2).T
    size = rng.uniform(size_lo, size_hi)
    boxes = np.array([POSITION_RANGES[c.position] for c in captions]).reshape(-1, 2, 2)
    u = rng.uniform(boxes[:, 0, 0], boxes[:, 0, 1])
    v = rng.uniform(boxes[:, 1, 0], boxes[:, 1, 1])
    return {
        "size": size.astype(np.float32),
        "cx": from_relative(u, size).astype(np.float32),
        "cy": from_relative(v, size).astype(np.float32),
    }


def sample_captioned_batch(
    n: int,
    seed: int | np.random.Generator = 0,
    size_prob: float = SIZE_PROB,
    position_prob: float = POSITION_PROB,
) -> ShapeBatch:
    """Draw ``n`` training captions and an image for each; ``prompts`` holds the captions.

    Parameters
    ----------
    n : int
        Number of images.
    seed : int or numpy Generator
        The same seed always gives the same batch.
    size_prob, position_prob : float, default=0.5
        Probability of a size word and of a position phrase.

    Returns
    -------
    ShapeBatch
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    captions = sample_captions(n, rng, size_prob, position_prob)
    geometry = sample_geometry(captions, rng)
    shape = np.array([SHAPES.index(c.shape) for c in captions], dtype=np.int64)
    color = np.array([COLORS.index(c.color) for c in captions], dtype=np.int64)
    background = np.array([BACKGROUNDS.index(c.background) for c in captions], dtype=np.int64)
    images = render_batch(shape, color, background, **geometry)
    return ShapeBatch(
        images=torch.from_numpy(images),
        shape=torch.from_numpy(shape),
        color=torch.from_numpy(color),
        background=torch.from_numpy(background),
        size=torch.from_numpy(geometry["size"]),
        cx=torch.from_numpy(geometry["cx"]),
        cy=torch.from_numpy(geometry["cy"]),
        prompts=[c.text() for c in captions],
    )
