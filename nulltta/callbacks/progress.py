"""A tqdm progress bar over denoising steps, showing the current reward."""

from __future__ import annotations

from typing import Any

from lightning import Callback
from tqdm.auto import tqdm
from typing_extensions import override

__all__ = ["AlignmentProgressBar"]


class AlignmentProgressBar(Callback):
    """One tick per denoising step; the postfix shows reward and inner steps.

    Parameters
    ----------
    description : str, default="Null-TTA"
        Text before the bar.

    """

    def __init__(self, description: str = "Null-TTA") -> None:
        self.description = description
        self._bar: tqdm | None = None

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Open the bar."""
        total = len(pl_module.trajectory.timesteps)
        self._bar = tqdm(total=total, desc=self.description, unit="step", leave=False)

    @override
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Advance by one step."""
        if self._bar is None:
            return
        row = outputs["row"]
        postfix = {"inner": row["inner_steps"]}
        reward = row.get("selected_reward", row.get("reward"))
        if reward is not None:
            postfix["reward"] = f"{reward:.4g}"
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    @override
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
