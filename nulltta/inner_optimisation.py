"""Step 3 of the method: the inner ascent on phi' at one denoising step.

``num_inner`` steps of Adam on every trajectory's phi' (warm start, fresh
moments each timestep), on the objective J of
:meth:`~nulltta.module.NullTextModule.objective`; its gradient comes from
autograd, or from a zeroth-order estimate when the reward has none
(``docs/concepts/method.md``). Each trajectory's row is updated alone: a row
whose J or gradient is not finite skips the step, and a row that has
stopped early (the plateau option) skips every later one, both as masks.
Nothing here waits for the device, except the plateau option's one read per
inner step (to end the loop once every trajectory has stopped).

:class:`InnerOptimisation` is a mixin of
:class:`~nulltta.module.NullTextModule`; it uses the module's parameter
(``null_embedding``), ``config``, ``trajectory``, ``objective``,
``phi_prime`` and Lightning's ``optimizers`` and ``manual_backward``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .equations import StepCoefficients, zeroth_order_gradient
from .speedups import Plateau, gradient_checkpointing
from .trajectory import INNER_FIELDS, reset_optimizer_state

__all__ = ["InnerOptimisation"]


class InnerOptimisation:
    """The inner loop of :class:`~nulltta.module.NullTextModule` (step 3)."""

    def _optimise(
        self,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
        num_inner: int,
    ) -> dict[str, Tensor]:
        """``num_inner`` ascent steps on every trajectory's phi', recorded as ``(B, n)`` tensors.

        Adam's moments are reset first (phi' itself carries over). A
        trajectory whose objective or gradient is not finite at a step skips
        it (phi', Adam moments and step count unchanged); one that has stopped
        early (the plateau option) skips every later step. Both are masks:
        only the plateau option reads a value on the host (to end the loop
        once every trajectory has stopped).
        """
        if num_inner == 0:
            return {}
        optimizer = self.optimizers()
        reset_optimizer_state(optimizer)
        phi = self.null_embedding
        per_row = (phi.shape[0],) + (1,) * (phi.ndim - 1)
        plateau = Plateau(self.config.early_stop_patience, self.config.early_stop_tolerance)
        active = torch.ones(phi.shape[0], dtype=torch.bool, device=phi.device)
        columns: dict[str, list[Tensor]] = {key: [] for key in (*INNER_FIELDS, "skipped", "active")}
        networks = self.adapter.frozen_modules()
        with gradient_checkpointing(networks, self.config.gradient_checkpointing):
            for _ in range(num_inner):
                optimizer.zero_grad()
                if self.zeroth_order:
                    with torch.no_grad():
                        ascent, values, parts = self._zeroth_order_step(
                            latents, eps_cond, eps_ref, coefficients
                        )
                    phi.grad = -ascent  # Adam minimises -J
                else:
                    values, parts = self.objective(
                        self.phi_prime(), latents, eps_cond, eps_ref, coefficients
                    )
                    self.manual_backward(-values.sum())
                wanted = torch.isfinite(values) & active
                # Rows to skip get a NaN gradient: TrajectoryAdam leaves non-finite rows alone.
                phi.grad.masked_fill_(~wanted.view(per_row), float("nan"))
                optimizer.step()
                updated = optimizer.last_updated  # Fabric's and Lightning's wrappers forward it
                for key, value in (("objective", values), *parts.items()):
                    columns[key].append(value.detach())
                columns["grad_norm"].append(phi.grad.detach().flatten(1).norm(dim=1))
                columns["skipped"].append(active & ~updated)
                columns["active"].append(active)
                if plateau.enabled:
                    active = active & ~plateau.update(values.detach())
                    if not bool(active.any()):  # the one host read, with early stop only
                        break
        return {key: torch.stack(column, dim=1) for key, column in columns.items()}

    def _zeroth_order_step(
        self,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Gradient estimate of J per trajectory, with J and its parts at phi' itself."""
        recorded: dict[str, Tensor] = {}
        traj, config = self.trajectory, self.config
        batch = traj.batch_size
        parameter = self.null_embedding.detach()

        def objective(params: Tensor) -> Tensor:
            values, parts = self.objective(
                self.phi_prime(params), latents, eps_cond, eps_ref, coefficients
            )
            recorded.update({key: value[:batch] for key, value in parts.items()})
            recorded["value"] = values[:batch]
            return values

        # Each trajectory draws its own directions, as a run of it alone would.
        draws = traj.randn(
            (config.zo_samples, 1, *parameter.shape[1:]), parameter.device, parameter.dtype
        )
        directions = draws.squeeze(2).transpose(0, 1)  # (K, B, ...)
        grad = zeroth_order_gradient(
            objective,
            parameter,
            num_samples=config.zo_samples,
            smoothing=config.zo_smoothing,
            directions=directions,
        )
        values = recorded.pop("value")
        return grad, values, recorded
