"""lambda2 annealing: ``tau_i = max(2 - (1 + c)^i, 0)`` multiplies both KL terms."""

from __future__ import annotations

from typing import Any

from lightning import Callback
from typing_extensions import override

from ..equations import annealing_schedule

__all__ = ["KLAnnealing"]


class KLAnnealing(Callback):
    """Set the module's KL multiplier ``tau_i`` before each denoising step.

    Without this callback the KL weight stays constant (``tau_i = 1``).

    Parameters
    ----------
    rate : float, default=0.008
        ``c`` of the schedule; tau reaches 0 at ``i = ln 2 / ln(1 + c)``.

    """

    def __init__(self, rate: float = 0.008) -> None:
        if rate < 0:
            raise ValueError(f"rate={rate} must be >= 0")
        self.rate = rate

    @override
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Write ``tau_i`` for step index ``batch`` into ``pl_module.kl_scale``."""
        num_steps = len(pl_module.trajectory.timesteps)
        pl_module.kl_scale = annealing_schedule(num_steps, self.rate)[int(batch)]

    @override
    def state_dict(self) -> dict[str, Any]:
        """The schedule's rate."""
        return {"rate": self.rate}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the rate."""
        self.rate = state_dict["rate"]
