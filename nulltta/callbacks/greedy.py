"""Greedy candidate selection: keep the best of K draws of x_{t-1} (step 5 of the method)."""

from __future__ import annotations

from typing import Any

import torch
from lightning import Callback
from torch import Tensor
from typing_extensions import override

from ..equations import tweedie_x0

__all__ = ["GreedySelection", "pick_best"]


def pick_best(scores: Tensor, num_candidates: int, batch_size: int) -> Tensor:
    """Row indices of the best candidate per trajectory, for k-major rows ``k * B + b``.

    A NaN score never wins (as released, it counts as minus infinity); ties go
    to the lowest ``k``.
    """
    scores = torch.nan_to_num(scores, nan=float("-inf"))
    best_k = scores.reshape(num_candidates, batch_size).argmax(0)
    return best_k * batch_size + torch.arange(batch_size, device=scores.device)


class GreedySelection(Callback):
    """Draw K candidates ``x_{t-1}^k = mu + sigma_t z_k``, score each, keep the argmax.

    Each candidate is scored by the target reward of its Tweedie estimate at
    t-1 (one batched CFG UNet pass over all K candidates, then one decode); at
    the last step the candidates are decoded and scored directly. The
    winner's conditional prediction is handed to the next step, which then
    skips its own conditional pass.

    Parameters
    ----------
    num_candidates : int, default=3
        K; 1 disables selection (plain ancestral sampling).
    select_initial_noise : bool, default=True
        Also choose x_T as the best of K initial noises, as released.

    """

    def __init__(self, num_candidates: int = 3, select_initial_noise: bool = True) -> None:
        if num_candidates < 1:
            raise ValueError(f"num_candidates={num_candidates} must be >= 1")
        self.num_candidates = num_candidates
        self.select_initial_noise = select_initial_noise

    def _score_candidates(
        self, module: Any, candidates: Tensor, step_index: int
    ) -> tuple[Tensor, Tensor | None]:
        traj = module.trajectory
        with torch.no_grad():
            if step_index >= len(traj.timesteps):
                return module.score_images(module.adapter.decode(candidates)), None
            eps, eps_cond = module.predict_cfg(candidates, step_index)
            coefficients = traj.coefficients[step_index]
            x0 = tweedie_x0(candidates, eps, coefficients.signal, coefficients.noise)
            return module.score_images(module.adapter.decode(x0)), eps_cond

    def _draw(self, module: Any, mean: Tensor, std: float) -> Tensor:
        """K candidates around each trajectory's mean, k-major, each from its own generator."""
        noise = module.trajectory.randn_k_major(
            self.num_candidates, mean.shape[1:], mean.device, mean.dtype
        )
        return mean.repeat(self.num_candidates, *[1] * (mean.ndim - 1)) + std * noise

    @override
    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Best of K initial noises at t = T, scored with phi (as released)."""
        if not self.select_initial_noise or self.num_candidates == 1:
            return
        traj = pl_module.trajectory
        zeros = torch.zeros_like(traj.latents)
        candidates = self._draw(
            pl_module, zeros, float(pl_module.adapter.scheduler.init_noise_sigma)
        )
        scores, eps_cond = self._score_candidates(pl_module, candidates, 0)
        best = pick_best(scores, self.num_candidates, traj.batch_size)
        traj.latents = candidates[best]
        traj.cached_cond_eps = eps_cond[best]

    @override
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Choose x_{t-1} among K draws around the transition mean."""
        if self.num_candidates == 1 or outputs["std"] == 0:
            return
        step_index = int(batch)
        candidates = self._draw(pl_module, outputs["mean"], outputs["std"])
        scores, eps_cond = self._score_candidates(pl_module, candidates, step_index + 1)
        batch_size = pl_module.trajectory.batch_size
        best = pick_best(scores, self.num_candidates, batch_size)
        outputs["next_latents"] = candidates[best]
        outputs["next_cond_eps"] = None if eps_cond is None else eps_cond[best]
        record = outputs["record"].per_trajectory
        record["candidate_rewards"] = scores.reshape(self.num_candidates, batch_size).T
        record["selected_reward"] = scores[best]
        record["selected_candidate"] = torch.div(best, batch_size, rounding_mode="floor")

    @override
    def state_dict(self) -> dict[str, Any]:
        """K and whether the initial noise is selected."""
        return {
            "num_candidates": self.num_candidates,
            "select_initial_noise": self.select_initial_noise,
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore K and the initial-noise switch."""
        self.num_candidates = state_dict["num_candidates"]
        self.select_initial_noise = state_dict["select_initial_noise"]
