"""Whether an image obeys its caption's size word and position phrase.

Judged by the gold reward's segmentation (:func:`nulltta.shapes.gold.measure`),
with the thresholds of ``docs/concepts/shapesbench.md``:

- ``small``: measured size below 0.50; ``large``: above 0.55;
- ``in the centre``: both centre coordinates within 0.1 of 0.5;
- a corner: the centre lies in that quadrant (``y`` down, so "top" is
  ``cy < 0.5`` and "left" is ``cx < 0.5``).
"""

from __future__ import annotations

from torch import Tensor

from .gold import Measurement, measure
from .world import parse_caption

__all__ = [
    "CENTRE_TOLERANCE",
    "LARGE_MIN",
    "SMALL_MAX",
    "obedience",
    "obeys_position",
    "obeys_size",
]

SMALL_MAX = 0.50
LARGE_MIN = 0.55
CENTRE_TOLERANCE = 0.1


def obeys_size(word: str, size: float) -> bool:
    """``small``: ``size < 0.50``; ``large``: ``size > 0.55``."""
    if word == "small":
        return size < SMALL_MAX
    if word == "large":
        return size > LARGE_MIN
    raise ValueError(f"unknown size word {word!r}; use 'small' or 'large'")


def obeys_position(phrase: str, cx: float, cy: float) -> bool:
    """Centre: ``|cx - 0.5| <= 0.1`` and ``|cy - 0.5| <= 0.1``; a corner: that quadrant."""
    if phrase == "in the centre":
        return abs(cx - 0.5) <= CENTRE_TOLERANCE and abs(cy - 0.5) <= CENTRE_TOLERANCE
    corners = {
        "in the top left": (cx < 0.5, cy < 0.5),
        "in the top right": (cx > 0.5, cy < 0.5),
        "in the bottom left": (cx < 0.5, cy > 0.5),
        "in the bottom right": (cx > 0.5, cy > 0.5),
    }
    if phrase not in corners:
        raise ValueError(f"unknown position phrase {phrase!r}; use one of {sorted(corners)}")
    return all(corners[phrase])


def obedience(
    images: Tensor, captions: list[str], measured: Measurement | None = None
) -> list[dict[str, bool]]:
    """Judge every optional word of every caption against its image.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    captions : list of str
        One caption per image (optional words may be absent).
    measured : Measurement, optional
        :func:`nulltta.shapes.gold.measure` of the images, if already computed.

    Returns
    -------
    list of dict
        Per image, ``{word or phrase: obeyed}`` for the words its caption
        carries (empty for a caption without optional words).
    """
    m = measure(images, captions) if measured is None else measured
    out = []
    for i, caption in enumerate(captions):
        parts = parse_caption(caption)
        judged = {}
        if parts.size is not None:
            judged[parts.size] = obeys_size(parts.size, float(m.size[i]))
        if parts.position is not None:
            judged[parts.position] = obeys_position(parts.position, float(m.cx[i]), float(m.cy[i]))
        out.append(judged)
    return out
