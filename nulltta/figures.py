"""Pictures of one alignment: plain against aligned, and the reward along the steps.

``nulltta generate`` writes both: :func:`comparison_image` (``comparison.png``,
the two images side by side, upscaled, each labelled with its rewards) and
:func:`reward_curve` (``rewards.png``, the target reward against the
denoising step).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from .history import History

__all__ = ["comparison_image", "reward_curve"]

_LABEL_HEIGHT = 14  # pixels per text line under each image


def comparison_image(
    images: Sequence[Image.Image], labels: Sequence[Sequence[str]], size: int = 256
) -> Image.Image:
    """Images side by side, each upscaled (nearest) to ``size`` with lines of text under it.

    Parameters
    ----------
    images : sequence of PIL.Image.Image
        E.g. ``[plain, aligned]``.
    labels : sequence of sequence of str
        The text lines under each image (e.g. its name and rewards).
    size : int, default=256
        Side of each panel in pixels; small images are scaled up by whole
        pixels so their pixels stay visible.

    """
    lines = max(len(text) for text in labels)
    width, height = size * len(images), size + _LABEL_HEIGHT * lines + 6
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (image, text) in enumerate(zip(images, labels, strict=True)):
        canvas.paste(image.convert("RGB").resize((size, size), Image.NEAREST), (index * size, 0))
        for row, line in enumerate(text):
            draw.text((index * size + 4, size + 3 + row * _LABEL_HEIGHT), line, fill="black")
    return canvas


def reward_curve(history: History, path: str | Path, title: str = "") -> Path | None:
    """Plot the target reward of x0_hat and of the chosen candidate against the step.

    Returns the path, or None when matplotlib is not installed (the
    ``plot`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    steps = history[:, "step"]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    inner = [(s, r) for s, r in zip(steps, history[:, "reward"], strict=True) if r is not None]
    if inner:
        axes.plot(*zip(*inner, strict=True), label="x0_hat after the inner steps (phi')")
    if "selected_reward" in history[0]:
        selected = history[:, "selected_reward"]
        axes.plot(steps, selected, label="chosen candidate (greedy selection)", alpha=0.8)
    axes.set_xlabel("denoising step")
    axes.set_ylabel("target reward")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
