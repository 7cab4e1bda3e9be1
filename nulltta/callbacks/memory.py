"""Peak memory of each denoising step: CUDA max allocated, or process peak RSS."""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import torch
from lightning import Callback
from typing_extensions import override

__all__ = ["MemoryProfiler", "peak_rss_mb", "reset_peak_rss"]

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux); return whether it worked."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (since the last reset on Linux)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class MemoryProfiler(Callback):
    """Write each step's peak memory into its history rows (``peak_memory_mb``).

    Opt-in (``NullTextAligner(profile_memory=True)``): on CUDA, reading the
    peak waits for the device at every step.

    On CUDA this is ``torch.cuda.max_memory_allocated`` since the step began;
    on CPU, the process's peak resident set size since the step began (Linux;
    elsewhere the process-lifetime peak), labelled ``memory_kind``.
    """

    def _device(self, pl_module: Any) -> torch.device:
        return pl_module.adapter.device

    @override
    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        """Reset the peak counter."""
        device = self._device(pl_module)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        else:
            reset_peak_rss()

    @override
    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Record the peak since the step began."""
        device = self._device(pl_module)
        shared = outputs["record"].shared
        if device.type == "cuda":
            shared["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            shared["memory_kind"] = "cuda_max_allocated"
        else:
            shared["peak_memory_mb"] = peak_rss_mb()
            shared["memory_kind"] = "process_peak_rss"
