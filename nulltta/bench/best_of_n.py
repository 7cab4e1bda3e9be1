"""Best-of-N: N plain samples from different seeds, keep the one the target likes best."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..equations import inner_steps_schedule
from .base import Method, MethodOutput, Task
from .sampling import ancestral_sample, prepare

__all__ = ["BestOfN", "matched_best_of_n"]


def matched_best_of_n(
    num_steps: int, n_min: int, n_max: int, rate: float, num_candidates: int
) -> int:
    """N whose UNet passes match one Null-TTA image with that schedule.

    Counts UNet image-passes, a backward pass as one (the weights are frozen,
    so it costs about a forward). Null-TTA at step i: one reference pass,
    ``n_i`` forward and ``n_i`` backward passes, one pass for the transition
    and ``2 K`` for the candidates, whose conditional half the next step
    reuses (the initial-noise selection stands in for the last step's
    candidates, which are decoded directly); a plain sample costs ``2 T``.
    VAE decodes are not counted: this slightly favours best-of-N.
    """
    inner = sum(inner_steps_schedule(num_steps, n_min, n_max, rate))
    passes = num_steps * (2 + 2 * num_candidates) + 2 * inner
    return max(1, round(passes / (2 * num_steps)))


@dataclass
class BestOfN(Method):
    """Sample ``n`` images (seed, then derived seeds), return the best by the target reward.

    Draw 0 uses the task's seed, so the plain image is always a candidate and
    best-of-N can only match or beat plain sampling on the target.

    Parameters
    ----------
    n : int, default=8
        Number of samples.

    """

    name = "best-of-n"
    follows = "best-of-N rejection sampling over seeds (as in the DAS and DNO papers' baselines)"
    n: int = 8

    def run(self, task: Task) -> MethodOutput:
        """Sample ``n`` times and keep the argmax of the target reward."""
        if self.n < 1:
            raise ValueError(f"n={self.n} must be >= 1")
        prepared = prepare(task)
        best_image, best_score, best_index = None, float("-inf"), -1
        for index in range(self.n):
            latents = ancestral_sample(prepared, task.generator(index))
            with torch.no_grad():
                image = prepared.adapter.decode(latents)
                score = float(task.reward(image, [task.prompt])[0])
            if score > best_score:
                best_image, best_score, best_index = image, score, index
        return MethodOutput(best_image, {"chosen_draw": best_index, "n": self.n})
