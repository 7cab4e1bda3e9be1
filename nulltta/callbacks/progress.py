"""A tqdm progress bar over denoising steps, showing the current reward now and then."""

from __future__ import annotations

from typing import Any

from lightning import Callback
from tqdm.auto import tqdm
from typing_extensions import override

__all__ = ["AlignmentProgressBar"]


class AlignmentProgressBar(Callback):
    """One tick per denoising step; the postfix shows inner steps and the mean reward.

    Parameters
    ----------
    description : str, default="Null-TTA"
        Text before the bar.
    reward_every : int, default=10
        Show the reward (the mean over the batch's trajectories) every this many
        steps: reading it waits for the device, so not at every step.

    """

    def __init__(self, description: str = "Null-TTA", reward_every: int = 10) -> None:
        self.description = description
        self.reward_every = reward_every
        self._bar: tqdm | None = None
        self._reward: str | None = None

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Open the bar."""
        total = len(pl_module.trajectory.timesteps)
        self._bar = tqdm(total=total, desc=self.description, unit="step", leave=False)
        self._reward = None

    @override
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Advance by one step."""
        if self._bar is None:
            return
        step = int(batch)
        record = outputs["record"]
        if step % self.reward_every == 0 or step == self._bar.total - 1:
            reward = record.per_trajectory.get("selected_reward")
            if reward is None and record.inner:
                reward = record.inner["reward"][:, -1]
            if reward is not None:
                self._reward = f"{float(reward.float().mean()):.4g}"
        postfix = {"inner": pl_module.trajectory.inner_steps[step]}
        if self._reward is not None:
            postfix["reward"] = self._reward
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(1)

    @override
    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
