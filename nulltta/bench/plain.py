"""Plain CFG sampling: the same ancestral sampler and seed, nothing optimised."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Method, MethodOutput, Task
from .sampling import ancestral_sample, prepare

__all__ = ["PlainSampling"]


@dataclass
class PlainSampling(Method):
    """One CFG ancestral sample (DDIM, eta = 1): the reference every method must beat.

    With the same seed it equals ``NullTextAligner.sample_baseline`` and the
    stock pipeline called with ``eta=1.0`` and a ``DDIMScheduler``.
    """

    name = "plain"
    follows = "the stock diffusers sampler (DDIM, eta = 1, CFG)"

    def run(self, task: Task) -> MethodOutput:
        """Sample once from ``task.seed``."""
        prepared = prepare(task)
        latents = ancestral_sample(prepared, task.generator())
        with torch.no_grad():
            image = prepared.adapter.decode(latents)
        return MethodOutput(image)
