"""Reading reward checkpoints: weights-only loading, unwrapping, strict key checks.

Where the files come from is :mod:`nulltta.rewards.loading`; this module
turns a found file into a frozen, checked ``nn.Module``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .loading import RewardWeightsError

__all__ = ["extract_state_dict", "freeze", "load_checkpoint", "load_state_dict_checked"]


def load_checkpoint(path: str | os.PathLike[str], what: str = "reward weights") -> Any:
    """``torch.load`` a checkpoint on the CPU with ``weights_only=True``.

    Raises
    ------
    RewardWeightsError
        Naming the file, when it cannot be read as a weights-only checkpoint.
    """
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise RewardWeightsError(
            f"{what}: cannot read {path} as a PyTorch weights file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Is it the right file, and complete? "
            "If it holds pickled Python objects you trust, load it yourself with "
            "torch.load(path, weights_only=False) and pass the built model instead."
        ) from err


def extract_state_dict(
    checkpoint: Any,
    path: str | os.PathLike[str] | None = None,
    keys: Sequence[str] = ("state_dict", "model", "module"),
) -> dict[str, Tensor]:
    """Return the tensor state dict inside a loaded checkpoint.

    Accepts a bare state dict or a dict holding it under one of ``keys``
    (``{"state_dict": ...}`` as HPSv2 saves, ``{"model": ...}`` as BLIP does),
    and strips a DistributedDataParallel ``module.`` prefix.

    Raises
    ------
    RewardWeightsError
        When no tensor state dict is found.
    """
    state = checkpoint
    for _ in range(3):
        if isinstance(state, Mapping) and not any(isinstance(v, Tensor) for v in state.values()):
            inner = next((state[k] for k in keys if k in state), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, Mapping) or not state:
        where = f" in {path}" if path is not None else ""
        raise RewardWeightsError(f"no state dict found{where}: got {type(checkpoint).__name__}")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        where = f" in {path}" if path is not None else ""
        top = list(state)[:5]
        raise RewardWeightsError(f"no tensors found{where}; top-level keys: {top}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


def load_state_dict_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    path: str | os.PathLike[str] | None,
    what: str,
    ignore_unexpected: Sequence[str] = (),
    assign: bool = False,
) -> None:
    """Load ``state_dict`` strictly, with one readable error on a mismatch.

    Parameters
    ----------
    module : nn.Module
        Model to fill.
    state_dict : mapping
        Parameter name to tensor.
    path : path-like or None
        The file it came from, for the message.
    what : str
        Name of the model, for the message.
    ignore_unexpected : sequence of str
        Key suffixes in the checkpoint that may be dropped (unused buffers).
    assign : bool, default=False
        Use the checkpoint's tensors as parameters (for a model built on the
        ``meta`` device, which skips the random initialisation).

    Raises
    ------
    RewardWeightsError
        On missing or unexpected keys or a shape mismatch.
    """
    own = module.state_dict()
    state = {
        k: v
        for k, v in state_dict.items()
        if k in own or not any(k.endswith(s) for s in ignore_unexpected)
    }
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        source = f" from {path}" if path is not None else ""
        parts = [f"{what}: the checkpoint{source} does not match the model."]
        if missing:
            parts.append(f"{len(missing)} missing keys, e.g. {missing[:4]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:4]}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches, e.g. {shapes[:3]}")
        parts.append("Is it the right file for this reward (and model size)?")
        raise RewardWeightsError(" ".join(parts))
    module.load_state_dict(state, strict=True, assign=assign)


def freeze(
    module: nn.Module,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Put a model in eval mode with ``requires_grad=False``, optionally cast and move it."""
    if dtype is not None or device is not None:
        module.to(device=device, dtype=dtype)
    module.eval()
    module.requires_grad_(False)
    return module
