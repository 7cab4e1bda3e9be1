"""The state of B sampling runs carried together, and what each step records.

:class:`Trajectory` is what :class:`~nulltta.module.NullTextModule` carries
from one denoising step to the next for ``B`` trajectories at once (different
prompts and/or seeds). Every trajectory has its own generator, so a batch of
``B`` draws exactly the noise that ``B`` single runs would.

:class:`StepRecord` is what one denoising step records. Its values stay
tensors on the device during the run, so the loop never waits for the device
to report a number; :meth:`Trajectory.histories` reads them all at once at the
end and turns them into one history (rows of JSON-safe values) per trajectory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from .adapters import Embeddings
from .equations import StepCoefficients

__all__ = ["INNER_FIELDS", "StepRecord", "Trajectory", "reset_optimizer_state"]

#: Per-inner-step values recorded for every trajectory (``StepRecord.inner``).
INNER_FIELDS = ("objective", "reward", "kl_local", "kl_embedding", "grad_norm")


def reset_optimizer_state(optimizer: Any) -> None:
    """Forget Adam's moments and step counts: equal to re-creating the optimizer.

    Works on a plain optimizer and on Lightning's and Fabric's wrappers.
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    inner.state.clear()


@dataclass
class StepRecord:
    """What one denoising step recorded for the ``B`` trajectories of a batch.

    Attributes
    ----------
    shared : dict
        JSON-safe values common to every trajectory (step index, timestep,
        ``kl_scale``, ``lambda2``, peak memory, ...).
    per_trajectory : dict of str to Tensor
        Tensors whose first dimension is ``B`` (``reward``, ``phi_distance``,
        ``candidate_rewards`` of shape ``(B, K)``, ...). Callbacks add theirs here.
    inner : dict of str to Tensor
        ``(B, n)`` tensors, one column per inner step: the fields of
        :data:`INNER_FIELDS`, plus ``skipped`` (a non-finite step) and
        ``active`` (the trajectory was still optimising: early stop).

    """

    shared: dict[str, Any] = field(default_factory=dict)
    per_trajectory: dict[str, Tensor] = field(default_factory=dict)
    inner: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Trajectory:
    """State of ``B`` sampling runs advanced together (row ``b`` is trajectory ``b``)."""

    prompts: list[str]
    cond: Embeddings
    null: Embeddings
    null_packed: Tensor
    timesteps: list[int]
    coefficients: list[StepCoefficients]
    inner_steps: list[int]
    latents: Tensor
    generators: list[torch.Generator | None]
    cached_cond_eps: Tensor | None = None
    phi: list[Tensor] = field(default_factory=list)
    records: list[StepRecord] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        """Number of trajectories advanced together."""
        return self.latents.shape[0]

    def randn(self, shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> Tensor:
        """Draw ``shape`` from every trajectory's own generator: ``(B, *shape)``.

        Row ``b`` is exactly what a single run of trajectory ``b`` draws with
        ``randn_tensor(shape, generator)``.
        """
        draws = [
            randn_tensor(tuple(shape), generator=generator, device=device, dtype=dtype)
            for generator in self.generators
        ]
        return torch.stack(draws)

    def randn_k_major(
        self, num: int, shape: Sequence[int], device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """``num`` draws of ``shape`` per trajectory, as ``num * B`` k-major rows ``k * B + b``."""
        draws = self.randn((num, *shape), device, dtype)  # (B, num, *shape)
        return draws.transpose(0, 1).reshape(num * self.batch_size, *shape)

    def phi_trajectories(self) -> Tensor:
        """Each trajectory's phi' after every step, ``(B, T, 1, ...)``, on the CPU."""
        stacked = torch.stack(self.phi).cpu()  # (T, B, ...)
        return stacked.transpose(0, 1).unsqueeze(2)

    def histories(self) -> list[list[dict[str, Any]]]:
        """One history per trajectory: a row per step, with its inner-step rows.

        Every recorded tensor is copied to the host in one transfer. Non-finite
        values become None (the step was skipped, as released).
        """
        tensors: list[Tensor] = []
        for record in self.records:
            tensors += list(record.per_trajectory.values()) + list(record.inner.values())
        flat = (
            torch.cat([t.detach().float().reshape(-1) for t in tensors]).cpu()
            if tensors
            else torch.zeros(0)
        )
        values = iter(torch.split(flat, [t.numel() for t in tensors]))
        batch = self.batch_size
        histories: list[list[dict[str, Any]]] = [[] for _ in range(batch)]
        for record in self.records:
            per_trajectory = {
                key: next(values).reshape(tensor.shape).tolist()
                for key, tensor in record.per_trajectory.items()
            }
            inner = {
                key: next(values).reshape(tensor.shape).tolist()
                for key, tensor in record.inner.items()
            }
            for b in range(batch):
                histories[b].append(_step_row(record.shared, per_trajectory, inner, b))
        return histories


def _finite_or_none(value: Any) -> Any:
    """Floats (or nested lists of them) with NaN and infinities replaced by None."""
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value if value == value and abs(value) != float("inf") else None


def _step_row(
    shared: dict[str, Any], per_trajectory: dict[str, list], inner: dict[str, list], b: int
) -> dict[str, Any]:
    row: dict[str, Any] = dict(shared)
    inner_rows = []
    if inner:
        for j, active in enumerate(inner["active"][b]):
            if not active:
                continue
            inner_row = {key: _finite_or_none(inner[key][b][j]) for key in INNER_FIELDS}
            inner_row["skipped"] = bool(inner["skipped"][b][j])
            if inner_row["skipped"]:
                inner_row["grad_norm"] = None
            inner_rows.append(inner_row)
    row["inner_steps"] = len(inner_rows)
    row["skipped_steps"] = sum(r["skipped"] for r in inner_rows)
    last = inner_rows[-1] if inner_rows else {}
    for key in INNER_FIELDS:
        row[key] = last.get(key)
    for key, values in per_trajectory.items():
        row[key] = _finite_or_none(values[b])
    row["inner"] = inner_rows
    return row
