"""The denoising loop: drives a ``NullTextModule`` through T steps with Fabric.

Lightning 2 has no custom fit loops; Fabric attaches the module and its
optimizer to this loop so that ``self.optimizers()``, ``manual_backward()``
and the callbacks work as under a ``Trainer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import Fabric

from .module import NullTextModule

__all__ = ["make_fabric", "run_denoising_loop"]


def make_fabric(device: torch.device, callbacks: Sequence[Any] = ()) -> Fabric:
    """A single-device Fabric on the pipeline's device."""
    if device.type == "cuda":
        return Fabric(accelerator="cuda", devices=[device.index or 0], callbacks=list(callbacks))
    if device.type == "mps":
        return Fabric(accelerator="mps", devices=1, callbacks=list(callbacks))
    return Fabric(accelerator="cpu", devices=1, callbacks=list(callbacks))


def run_denoising_loop(module: NullTextModule, callbacks: Sequence[Any] = ()) -> NullTextModule:
    """Run every denoising step of the module's trajectory.

    The hook order is a ``Trainer``'s: callbacks' ``on_train_batch_end``
    first (greedy selection chooses x_{t-1} there), then the module's own,
    which advances the trajectory (``fabric.setup`` registers the module as
    the last callback). Hooks get keywords, so each receives only those its
    signature takes: Lightning callbacks ``trainer`` (here the Fabric) and
    ``pl_module``, the module's own hooks neither.

    Parameters
    ----------
    module : NullTextModule
        With a trajectory started (:meth:`NullTextModule.start_trajectory`).
    callbacks : sequence of lightning.Callback
        Called with ``(fabric, module, ...)`` in place of ``(trainer, module, ...)``.

    Returns
    -------
    NullTextModule
        The same module, its trajectory finished.

    """
    if module.trajectory is None:
        raise RuntimeError("start the trajectory first: module.start_trajectory(prompt, ...)")
    fabric = make_fabric(module.adapter.device, callbacks)
    wrapped, _ = fabric.setup(module, module.configure_optimizers(), move_to_device=False)
    with module.adapter.frozen():
        hook_args = {"trainer": fabric, "pl_module": module}
        fabric.call("on_train_start", **hook_args)
        for step_index in range(len(module.trajectory.timesteps)):
            step = {"batch": step_index, "batch_idx": step_index}
            fabric.call("on_train_batch_start", **hook_args, **step)
            outputs = wrapped.training_step(step_index, step_index)
            fabric.call("on_train_batch_end", **hook_args, outputs=outputs, **step)
        fabric.call("on_train_end", **hook_args)
    return module
