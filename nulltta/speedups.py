"""Options that make the inner loop cheaper, each off by default.

- :func:`gradient_checkpointing`: recompute UNet/VAE block activations in the
  backward pass instead of storing them (less memory, about one more forward).
- :func:`autocast`: run the UNet and the VAE in bf16/fp16; rewards stay fp32.
- :func:`downscale_latents`: decode a smaller ``x0_hat`` for the reward's
  gradient (the VAE decoder costs ``scale^2`` as much).
- :class:`Plateau`: stop a timestep's inner loop when the objective stops improving.
- :func:`strided_schedule`: optimise only every k-th timestep.

``benchmarks/inner_step.py`` and ``benchmarks/speed_options.py`` measure each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AUTOCAST_DTYPES",
    "Plateau",
    "autocast",
    "downscale_latents",
    "resolve_autocast",
    "gradient_checkpointing",
    "strided_schedule",
]

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@contextlib.contextmanager
def gradient_checkpointing(modules: Sequence[nn.Module], enabled: bool = True) -> Iterator[None]:
    """Turn on diffusers' block-wise gradient checkpointing, then restore each flag.

    Only diffusers models that support it are touched (the UNet and the VAE;
    a transformers text encoder is left alone). Checkpointing acts only on
    passes run with gradients enabled, so ``no_grad`` passes cost the same.
    """
    saved: list[tuple[nn.Module, bool]] = []
    if enabled:
        for model in modules:
            if not getattr(model, "_supports_gradient_checkpointing", False):
                continue
            saved += [
                (m, m.gradient_checkpointing)
                for m in model.modules()
                if hasattr(m, "gradient_checkpointing")
            ]
            model.enable_gradient_checkpointing()
    try:
        yield
    finally:
        for module, flag in saved:
            module.gradient_checkpointing = flag


def autocast(device: torch.device, dtype_name: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``"bfloat16"``/``"float16"``, or a no-op for None."""
    if dtype_name is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[dtype_name])


def resolve_autocast(
    requested: str | None, family_choice: str | None, device_type: str
) -> str | None:
    """The autocast dtype a run uses: ``requested``, with "auto" resolved.

    "auto" is the family's choice on CUDA (reduced precision, as the release
    runs Stable Diffusion) and float32 (None) on every other device, where
    reduced precision is slower (no bf16/fp16 units on a CPU).
    """
    if requested != "auto":
        return requested
    return family_choice if device_type == "cuda" else None


def downscale_latents(latents: Tensor, scale: float) -> Tensor:
    """Resize ``(B, C, h, w)`` latents by ``scale`` (antialiased bilinear); 1.0 is a no-op."""
    if scale == 1.0:
        return latents
    size = (max(1, round(latents.shape[-2] * scale)), max(1, round(latents.shape[-1] * scale)))
    return F.interpolate(latents, size=size, mode="bilinear", antialias=True, align_corners=False)


def strided_schedule(inner_steps: list[int], every: int) -> list[int]:
    """Keep ``n_i`` at step indices ``0, every, 2 every, ...``; zero elsewhere."""
    return [n if i % every == 0 else 0 for i, n in enumerate(inner_steps)]


class Plateau:
    """Say when a maximised objective has not improved for ``patience`` steps, per trajectory.

    Works on a ``(B,)`` tensor of objective values per inner step, one per
    trajectory, on the device (NaN counts as no improvement, like a skipped
    step); :meth:`should_stop` is the one-trajectory form for Python floats.

    Parameters
    ----------
    patience : int or None
        Inner steps without an improvement larger than ``tolerance`` before
        stopping; None never stops.
    tolerance : float, default=0.0
        Minimum increase of the objective that counts as an improvement.

    """

    def __init__(self, patience: int | None, tolerance: float = 0.0) -> None:
        self.patience = patience
        self.tolerance = tolerance
        self.best: Tensor | None = None
        self.waited: Tensor | None = None

    @property
    def enabled(self) -> bool:
        """Whether this plateau can ever stop (``patience`` is set)."""
        return self.patience is not None

    def update(self, values: Tensor) -> Tensor:
        """Record one inner step's ``(B,)`` objectives; return the ``(B,)`` mask of stopped rows."""
        values = values.detach()
        if self.best is None or self.waited is None:
            self.best = torch.full_like(values, float("-inf"))
            self.waited = torch.zeros_like(values)
        improved = values > self.best + self.tolerance
        self.best = torch.where(improved, values, self.best)
        self.waited = torch.where(improved, torch.zeros_like(self.waited), self.waited + 1)
        if self.patience is None:
            return torch.zeros_like(improved)
        return self.waited >= self.patience

    def should_stop(self, value: float | None) -> bool:
        """Record one objective value (None for a skipped step); True once it has plateaued."""
        value = float("nan") if value is None else value
        return bool(self.update(torch.tensor([value], dtype=torch.float64))[0])
