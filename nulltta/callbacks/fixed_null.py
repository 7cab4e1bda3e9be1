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
        ``(T, 1, ...)`` phi' per step, as in ``NullTextAligner.phi_`` (broadcast
        over the batch), or ``(T, B, ...)``, one row per trajectory.

    """

    def __init__(self, phi_trajectory: torch.Tensor) -> None:
        self.phi_trajectory = phi_trajectory
        self._on_device: torch.Tensor | None = None

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Move the trajectory to the module's device once (not at every step)."""
        device = pl_module.null_embedding.device
        self._on_device = self.phi_trajectory.to(device=device, dtype=torch.float32)

    @override
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Load phi'_i into the module: one row per trajectory, or one row for all."""
        if self._on_device is None:
            self.on_train_start(trainer, pl_module)
        phi = self._on_device[int(batch)]
        batch_size = pl_module.trajectory.batch_size
        if phi.shape[0] != batch_size:
            phi = phi[:1].repeat(batch_size, *[1] * (phi.ndim - 1))
        pl_module.null_embedding.data = phi.clone()

    @override
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Drop the device copy."""
        self._on_device = None
