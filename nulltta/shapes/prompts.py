"""The ShapesBench vocabulary and the grammar of its prompts and captions.

Benchmark prompts name three attributes, ``"a red circle on a white
background"``; training captions may add a size word and a position phrase,
``"a large red circle in the top left on a white background"``. Anything
else raises :class:`PromptError`, whose message names the vocabulary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "POSITION_PHRASES",
    "SHAPES",
    "SIZE_WORDS",
    "VOCABULARY",
    "PromptError",
    "PromptParts",
    "all_prompts",
    "check_prompt",
    "make_caption",
    "make_prompt",
    "parse_caption",
    "parse_prompt",
]

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "cyan", "magenta")
BACKGROUNDS: tuple[str, ...] = ("white", "black", "gray", "brown")
#: Optional words of a caption: the size word and the position phrase.
SIZE_WORDS: tuple[str, ...] = ("small", "large")
POSITION_PHRASES: tuple[str, ...] = (
    "in the centre",
    "in the top left",
    "in the top right",
    "in the bottom left",
    "in the bottom right",
)
# Every word a prompt may contain (the tokenizer's vocabulary is built from it).
VOCABULARY: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            *SHAPES,
            *COLORS,
            *BACKGROUNDS,
            *SIZE_WORDS,
            *(w for phrase in POSITION_PHRASES for w in phrase.split()),
            "a",
            "an",
            "on",
            "the",
            "background",
        ]
    )
)
_PROMPT_RE = re.compile(
    r"^an? (?:(\w+) )?(\w+) (\w+)"
    rf"(?: ({'|'.join(re.escape(p) for p in POSITION_PHRASES)}))?"
    r" on an? (\w+) background$"
)


class PromptError(ValueError):
    """Raised for a prompt the embedded model's world cannot express."""


@dataclass(frozen=True)
class PromptParts:
    """What a prompt or caption says: three named attributes and the optional words.

    Attributes
    ----------
    shape, color, background : str
        Names from :data:`SHAPES`, :data:`COLORS`, :data:`BACKGROUNDS`.
    size : str or None
        ``"small"``, ``"large"`` or ``None`` (size not named).
    position : str or None
        One of :data:`POSITION_PHRASES`, or ``None`` (position not named).
    """

    shape: str
    color: str
    background: str
    size: str | None = None
    position: str | None = None

    def attributes(self) -> tuple[str, str, str]:
        """``(shape, colour, background)``."""
        return self.shape, self.color, self.background

    def text(self) -> str:
        """The caption, ``a [size] {colour} {shape} [position] on a {background} background``."""
        return make_caption(self.shape, self.color, self.background, self.size, self.position)


def _vocab_message() -> str:
    return (
        "prompts must read 'a [size] <colour> <shape> [position] on a <background> "
        f"background' with shape in {list(SHAPES)}, colour in {list(COLORS)}, background in "
        f"{list(BACKGROUNDS)}, and optionally size in {list(SIZE_WORDS)} and position in "
        f"{list(POSITION_PHRASES)}"
    )


def make_caption(
    shape: str, color: str, background: str, size: str | None = None, position: str | None = None
) -> str:
    """Return ``a [size] {colour} {shape} [position] on a {background} background``.

    Parameters
    ----------
    shape, color, background : str
        Names from :data:`SHAPES`, :data:`COLORS`, :data:`BACKGROUNDS`.
    size : {"small", "large"}, optional
        The size word; left out when ``None``.
    position : str, optional
        One of :data:`POSITION_PHRASES`; left out when ``None``.

    Raises
    ------
    PromptError
        When a name or word is not in the vocabulary.
    """
    for value, allowed, what in (
        (shape, SHAPES, "shape"),
        (color, COLORS, "colour"),
        (background, BACKGROUNDS, "background"),
        (size, (None, *SIZE_WORDS), "size word"),
        (position, (None, *POSITION_PHRASES), "position phrase"),
    ):
        if value not in allowed:
            raise PromptError(f"unknown {what} {value!r}; {_vocab_message()}.")
    words = ["a", size, color, shape, position, "on", "a", background, "background"]
    return " ".join(w for w in words if w is not None)


def make_prompt(shape: str, color: str, background: str) -> str:
    """Return the prompt for three attribute names, e.g. ``"a red circle on a white background"``.

    Raises
    ------
    PromptError
        When a name is not in the vocabulary.
    """
    return make_caption(shape, color, background)


def parse_caption(prompt: str) -> PromptParts:
    """Read every attribute a prompt or caption names, optional words included.

    Case, surrounding whitespace, repeated spaces and a final full stop are
    ignored; ``an`` may stand for ``a``.

    Raises
    ------
    PromptError
        For a prompt outside the world's vocabulary; the message lists it
        (shapes, colours, backgrounds, size words and position phrases).
    """
    text = " ".join(prompt.strip().lower().rstrip(".").split())
    match = _PROMPT_RE.match(text)
    if match is None:
        raise PromptError(f"cannot read prompt {prompt!r}: {_vocab_message()}.")
    size, color, shape, position, background = match.groups()
    if (
        shape not in SHAPES
        or color not in COLORS
        or background not in BACKGROUNDS
        or size not in (None, *SIZE_WORDS)
    ):
        raise PromptError(f"prompt {prompt!r} is outside the vocabulary: {_vocab_message()}.")
    return PromptParts(shape, color, background, size, position)


def parse_prompt(prompt: str) -> tuple[str, str, str]:
    """Read ``(shape, colour, background)`` from a prompt (optional words are accepted).

    :func:`parse_caption` also returns the size word and position phrase.

    Raises
    ------
    PromptError
        For a prompt outside the world's vocabulary; the message lists it.
    """
    return parse_caption(prompt).attributes()


def check_prompt(prompt: str) -> PromptParts:
    """Raise unless the embedded model's world can express ``prompt``.

    Returns
    -------
    PromptParts
        What the prompt names (see :func:`parse_caption`).

    Raises
    ------
    PromptError
        For a prompt outside the vocabulary (the model was never trained on
        it); the message names the vocabulary.
    """
    return parse_caption(prompt)


def all_prompts() -> list[str]:
    """All 96 three-attribute prompts of the world, in a fixed order."""
    return [make_prompt(s, c, b) for s in SHAPES for c in COLORS for b in BACKGROUNDS]
