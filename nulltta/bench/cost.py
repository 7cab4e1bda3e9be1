"""Cost of one method run: network calls counted by hooks, wall time, peak memory.

Counts are machine-independent: images passed through the UNet forward and
backward, through the VAE decoder forward and backward, and through the
target reward. A batch of ``B`` rows counts ``B``; a CFG pass over
``[uncond, cond]`` counts 2 UNet forwards per image. A network recomputed
whole by gradient checkpointing (DNO's chain) counts again; diffusers'
block-wise checkpointing (Null-TTA's option) recomputes blocks, not networks,
and shows in the time only.
"""

from __future__ import annotations

import ctypes
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..callbacks.memory import peak_rss_mb, reset_peak_rss

__all__ = ["CostCounter", "Counts", "Measurement", "current_rss_mb", "measure"]


@dataclass
class Counts:
    """Images through each network (see the module docstring)."""

    unet_forward: int = 0
    unet_backward: int = 0
    vae_decode: int = 0
    vae_backward: int = 0
    reward_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        """Plain dict."""
        return asdict(self)


def _batch_size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    first = args[0] if args else next(iter(kwargs.values()))
    return int(first.shape[0])


def _first_tensor(output: Any) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    sample = getattr(output, "sample", None)
    return sample if isinstance(sample, Tensor) else None


class CostCounter:
    """Count images through the UNet, the VAE decoder and a reward while active.

    Parameters
    ----------
    denoiser : nn.Module
        The UNet (or transformer).
    decoder : nn.Module
        The VAE's decoder network (``vae.decoder``).
    reward : nn.Module, optional
        The target reward; every image scored counts one call.

    Examples
    --------
    >>> with CostCounter(pipe.unet, pipe.vae.decoder, reward) as counter:  # doctest: +SKIP
    ...     image = method.run(task).image
    >>> counter.counts.unet_forward  # doctest: +SKIP

    """

    def __init__(self, denoiser: nn.Module, decoder: nn.Module, reward: nn.Module | None) -> None:
        self.denoiser = denoiser
        self.decoder = decoder
        self.reward = reward
        self.counts = Counts()
        self._handles: list[Any] = []

    def _count_forward(self, key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            setattr(self.counts, key, getattr(self.counts, key) + _batch_size(args, kwargs))

        return hook

    def _count_backward(self, key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict, output: Any) -> None:
            tensor = _first_tensor(output)
            if tensor is None or not (torch.is_grad_enabled() and tensor.requires_grad):
                return
            rows = int(tensor.shape[0])

            def on_grad(grad: Tensor) -> None:
                setattr(self.counts, key, getattr(self.counts, key) + rows)

            tensor.register_hook(on_grad)

        return hook

    def __enter__(self) -> CostCounter:
        pairs = [(self.denoiser, "unet"), (self.decoder, "vae")]
        for module, prefix in pairs:
            forward_key = "unet_forward" if prefix == "unet" else "vae_decode"
            self._handles.append(
                module.register_forward_pre_hook(self._count_forward(forward_key), with_kwargs=True)
            )
            self._handles.append(
                module.register_forward_hook(
                    self._count_backward(f"{prefix}_backward"), with_kwargs=True
                )
            )
        if self.reward is not None:
            self._handles.append(
                self.reward.register_forward_pre_hook(
                    self._count_forward("reward_calls"), with_kwargs=True
                )
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (Linux; 0.0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _release_freed_memory() -> None:
    gc.collect(1)  # young generations only: a full collection takes ~1 s here
    try:  # give freed heap pages back, so the next peak is not hidden by them
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Measurement:
    """Wall time and memory of one measured block (filled in on exit)."""

    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    peak_memory_delta_mb: float = 0.0
    memory_kind: str = ""


@contextmanager
def measure(device: torch.device) -> Iterator[Measurement]:
    """Time a block and record its peak memory.

    On CUDA: ``max_memory_allocated`` during the block, and its excess over
    what was allocated before. On CPU: the process's peak RSS during the block
    (Linux resets the counter first), and its excess over the RSS before, after
    returning freed heap memory to the system so the excess is not hidden.
    """
    result = Measurement()
    _release_freed_memory()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        result.memory_kind = "cuda_max_allocated"
    else:
        reset_peak_rss()
        before = current_rss_mb()
        result.memory_kind = "process_peak_rss"
    start = time.perf_counter()
    try:
        yield result
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            peak = peak_rss_mb()
        result.seconds = time.perf_counter() - start
        result.peak_memory_mb = peak
        result.peak_memory_delta_mb = max(0.0, peak - before)
