"""The callbacks a Null-TTA run needs, chosen from its settings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..config import AlignmentConfig
from .annealing import KLAnnealing
from .greedy import GreedySelection
from .memory import MemoryProfiler
from .progress import AlignmentProgressBar

__all__ = ["method_callbacks"]


def method_callbacks(
    config: AlignmentConfig,
    extra: Sequence[Any] = (),
    profile_memory: bool = True,
    progress: bool = False,
) -> list[Any]:
    """Built-in callbacks in the order they must run.

    lambda2 annealing (when ``config.anneal_kl``), greedy selection (when
    ``K > 1``), then ``extra`` (e.g. a fixed phi' trajectory), then the
    observers: memory profiling and the progress bar.
    """
    callbacks: list[Any] = []
    if config.anneal_kl:
        callbacks.append(KLAnnealing(config.schedule_rate))
    if config.num_candidates > 1:
        callbacks.append(GreedySelection(config.num_candidates, config.select_initial_noise))
    callbacks.extend(extra)
    if profile_memory:
        callbacks.append(MemoryProfiler())
    if progress:
        callbacks.append(AlignmentProgressBar())
    return callbacks
