"""Weighted sums of rewards: ``R = w * R_a + (1 - w) * R_b`` and more terms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .base import Reward

__all__ = ["WeightedReward", "weighted_sum"]


def weighted_sum(scores: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Return ``sum_i w_i * s_i`` for per-image score tensors ``s_i`` of equal shape."""
    if len(scores) != len(weights) or not scores:
        raise ValueError("weighted_sum needs as many weights as score tensors, at least one")
    total = torch.zeros_like(scores[0], dtype=torch.float32)
    for score, weight in zip(scores, weights, strict=True):
        total = total + weight * score.float()
    return total


class WeightedReward(Reward):
    """Weighted combination of rewards (the paper's multi-objective ``R_multi``).

    Parameters
    ----------
    terms : sequence of (Reward, float)
        Each reward and its weight, e.g. ``[(pickscore, w), (hpsv2, 1 - w)]``.

    Notes
    -----
    Differentiable only if every term is; prompts are required if any term
    needs them.

    """

    def __init__(self, terms: Sequence[tuple[Reward, float]], **kwargs) -> None:
        super().__init__(**kwargs)
        if not terms:
            raise ValueError("WeightedReward needs at least one (reward, weight) term")
        for reward, _ in terms:
            if not isinstance(reward, Reward):
                raise TypeError(
                    f"every term must be a Reward, got {type(reward).__name__}; "
                    "wrap callables with nulltta.rewards.CallableReward"
                )
        self.rewards = nn.ModuleList([reward for reward, _ in terms])
        self.weights = [float(weight) for _, weight in terms]
        self.requires_prompts = any(r.requires_prompts for r in self.rewards)

    @property
    def is_differentiable(self) -> bool:  # type: ignore[override]
        """True when every term is differentiable."""
        return all(reward.is_differentiable for reward in self.rewards)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Weighted sum of every term's scores."""
        scores = [reward.score(images, prompts).float() for reward in self.rewards]
        return weighted_sum(scores, self.weights)
