"""``TrajectoryAdam``: Adam over a stack of independent trajectories' phi'.

phi' for ``B`` trajectories is one ``(B, ...)`` parameter (the module keeps a
single parameter). Adam is elementwise, so one optimizer over the stack
already keeps each trajectory's moments apart; what ``torch.optim.Adam``
cannot do is give each row its **own step count** and skip a non-finite step
for one row only: it holds one step count per tensor, and skipping would mean
reading the gradient's finiteness on the host (a device sync per inner step).

Here the skip is a mask computed on the device: a row whose gradient holds a
NaN or an infinity keeps its phi', moments and step count, exactly as a
single-trajectory run that skipped that step. On rows that step, the update is
``torch.optim.Adam``'s (tested against it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["TrajectoryAdam"]


class TrajectoryAdam(torch.optim.Optimizer):
    """Adam with one step count per leading-dimension row, skipping non-finite rows.

    For each row ``b`` with a finite gradient ``g`` (step count ``k_b`` after
    the increment)::

        m_b = beta1 m_b + (1 - beta1) g
        v_b = beta2 v_b + (1 - beta2) g^2
        p_b = p_b - lr / (1 - beta1^k_b) * m_b / (sqrt(v_b) / sqrt(1 - beta2^k_b) + eps)

    Rows whose gradient is not finite are left unchanged. After each
    :meth:`step`, :attr:`last_updated` holds the ``(B,)`` boolean mask of the
    rows that stepped (a device tensor; reading it is the caller's choice).

    Parameters
    ----------
    params : iterable of Tensor
        Parameters whose first dimension indexes trajectories.
    lr : float, default=1e-2
    betas : (float, float), default=(0.9, 0.999)
    eps : float, default=1e-8
        As in ``torch.optim.Adam``.

    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-2,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"lr={lr} must be > 0")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.last_updated: Tensor | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One Adam step on every row whose gradient is finite."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                self.last_updated = self._step_rows(param, group["lr"], beta1, beta2, group["eps"])
        return loss

    def _step_rows(
        self, param: Tensor, lr: float, beta1: float, beta2: float, eps: float
    ) -> Tensor:
        grad = param.grad
        rows = param.shape[0]
        per_row = (rows,) + (1,) * (param.ndim - 1)
        state = self.state[param]
        if not state:
            # Float64 step counts: the bias corrections then round as torch.optim.Adam's
            # (which computes them in Python floats).
            state["step"] = torch.zeros(rows, dtype=torch.float64, device=param.device)
            state["exp_avg"] = torch.zeros_like(param)
            state["exp_avg_sq"] = torch.zeros_like(param)
        finite = torch.isfinite(grad).flatten(1).all(1)
        grad = torch.where(finite.view(per_row), grad, 0.0)
        step = state["step"] + finite
        exp_avg = state["exp_avg"].lerp(grad, 1 - beta1)
        exp_avg_sq = torch.addcmul(state["exp_avg_sq"] * beta2, grad, grad, value=1 - beta2)
        # A row that never stepped has step 0; its (infinite) update is masked out below.
        step_size = (lr / (1 - beta1**step)).to(param.dtype).view(per_row)
        bias_correction2_sqrt = (1 - beta2**step).sqrt().to(param.dtype).view(per_row)
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
        stepped = param - step_size * exp_avg / denom
        mask = finite.view(per_row)
        param.copy_(torch.where(mask, stepped, param))
        state["exp_avg"] = torch.where(mask, exp_avg, state["exp_avg"])
        state["exp_avg_sq"] = torch.where(mask, exp_avg_sq, state["exp_avg_sq"])
        state["step"] = step
        return finite
