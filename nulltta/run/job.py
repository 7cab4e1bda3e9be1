"""``RunJob``: what every rank of a run is given (the same on every rank)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plan import Batch
from .prompts import PromptSet

__all__ = ["RunJob"]


@dataclass
class RunJob:
    """Everything a rank needs to do its part of a run.

    Attributes
    ----------
    out : Path
        The output folder (checked writable).
    prompt_set : PromptSet
    plan : list of Batch
    aligner_kwargs : dict
        :class:`~nulltta.NullTextAligner` arguments from the method flags
        (without ``device``: each rank uses its own).
    batch_size : int
    heldout : list of str or None
        Held-out reward names; None takes the model profile's (and its gold).
    allow_truncation : bool
        Align prompts longer than the text encoder takes (cut, as diffusers does).
    grid_prompts : int
        Prompts shown in ``grid.png``.
    progress : bool
        Show progress bars on rank 0.

    """

    out: Path
    prompt_set: PromptSet
    plan: list[Batch]
    aligner_kwargs: dict[str, Any]
    batch_size: int
    heldout: list[str] | None
    allow_truncation: bool = False
    grid_prompts: int = 4
    progress: bool = True
