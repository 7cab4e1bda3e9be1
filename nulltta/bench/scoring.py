"""Score finished images with a model's evaluation rewards, as saved (8-bit).

Benchmark scripts that fit many images outside the runner
(``benchmarks/vs_release.py``, ``benchmarks/tune_defaults.py``) score them
here, with the same rewards the runner's rows hold: the target, the model's
held-out rewards, its gold reward and its prompt fidelity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..profiles import ModelProfile
from .runner import quantize

__all__ = ["evaluation_scorers", "score_images"]

Scorer = Callable[[Tensor, list[str]], Tensor]


def evaluation_scorers(
    profile: ModelProfile, target: str | None = None, device: torch.device | str = "cpu"
) -> dict[str, Scorer]:
    """``{"target": ..., <held-out names>..., <gold>, "fidelity"}`` scorers for a model.

    Parameters
    ----------
    profile : ModelProfile
        The model's profile (its default target, held-out and gold rewards, fidelity).
    target : str, optional
        The target reward's name; the profile's by default.
    device : torch.device or str
        Where the reward models run.

    """
    from ..rewards import get_reward

    names = {"target": target or profile.reward}
    for name in (*profile.heldout, *([profile.gold] if profile.gold else [])):
        names[name] = name
    scorers: dict[str, Scorer] = {}
    for label, name in names.items():
        reward = get_reward(name).to(device).eval()
        scorers[label] = lambda images, prompts, reward=reward: reward.score_trusted(
            images, prompts
        )
    if profile.fidelity is not None:
        scorers["fidelity"] = profile.fidelity
    return scorers


def score_images(
    images: Tensor, prompts: Sequence[str], scorers: dict[str, Scorer]
) -> list[dict[str, float]]:
    """Every scorer on the images rounded to 8 bits (as saved), one dict per image."""
    pixels = quantize(images)
    with torch.no_grad():
        values: dict[str, Any] = {name: fn(pixels, list(prompts)) for name, fn in scorers.items()}
    return [
        {name: float(value[i]) for name, value in values.items()} for i in range(pixels.shape[0])
    ]
