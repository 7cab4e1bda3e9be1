"""Replay a fitted phi' trajectory: amortised sampling with no optimisation."""

from __future__ import annotations

from typing import Any

import torch
from lightning import Callback
from typing_extensions import override

__all__ = ["FixedNullTrajectory"]


class FixedNullTrajectory(Callback):
    """Before step i, set phi' to ``phi_trajectory[i]`` (broadcast over the batch).

    Used by ``NullTextAligner.generate(reoptimize=False)`` with zero inner
    steps, so each image costs what a plain CFG sample costs.

    Parameters
    ----------
    phi_trajectory : Tensor
        ``(T, 1, ...)`` phi' per step, as in ``NullTextAligner.phi_``.

    """

    def __init__(self, phi_trajectory: torch.Tensor) -> None:
        self.phi_trajectory = phi_trajectory

    @override
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Load phi'_i into the module."""
        phi = self.phi_trajectory[int(batch)].to(pl_module.null_embedding.device)
        batch_size = pl_module.trajectory.batch_size
        pl_module.null_embedding.data = phi[:1].repeat(batch_size, *[1] * (phi.ndim - 1)).float()
