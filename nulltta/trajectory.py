"""The state of one sampling run and the per-inner-step log row.

:class:`Trajectory` is what :class:`~nulltta.module.NullTextModule` carries
from one denoising step to the next; :func:`inner_step_row` is the record the
inner loop appends after every ascent step on phi'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .adapters import Embeddings
from .equations import StepCoefficients

__all__ = ["Trajectory", "inner_step_row", "reset_optimizer_state"]


def reset_optimizer_state(optimizer: Any) -> None:
    """Forget Adam's moments and step count: equal to re-creating the optimizer.

    Works on a plain optimizer and on Lightning's and Fabric's wrappers.
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    inner.state.clear()


@dataclass
class Trajectory:
    """State of one sampling run (batch of ``B`` images of one prompt)."""

    prompts: list[str]
    cond: Embeddings
    null: Embeddings
    null_packed: Tensor
    timesteps: list[int]
    coefficients: list[StepCoefficients]
    inner_steps: list[int]
    latents: Tensor
    generator: torch.Generator | None
    cached_cond_eps: Tensor | None = None
    phi: list[Tensor] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        """Number of images sampled together."""
        return self.latents.shape[0]


def _mean(x: Tensor) -> float:
    return float(x.detach().float().mean())


def inner_step_row(
    values: Tensor, parts: dict[str, Tensor], grad: Tensor | None, skipped: bool
) -> dict[str, Any]:
    """Means of the objective and its parts over the batch, and the gradient norm.

    Non-finite values become None (the step was skipped, as released); ``grad``
    is None for a skipped step.
    """

    def finite_or_none(x: float) -> float | None:
        return x if x == x and abs(x) != float("inf") else None

    return {
        "objective": finite_or_none(_mean(values)),
        "reward": finite_or_none(_mean(parts["reward"])),
        "kl_local": finite_or_none(_mean(parts["kl_local"])),
        "kl_embedding": finite_or_none(_mean(parts["kl_embedding"])),
        "grad_norm": None if grad is None else float(grad.norm()),
        "skipped": skipped,
    }
