"""Aligning one batch of the plan, with the faults a long run meets.

:func:`align_batch` runs one ``fit`` for the whole batch. If it raises, the
batch is aligned again one image at a time, so that one bad prompt (a
reward that fails on it) fails alone and the others are still made; a
deterministic failure fails the same way on a rerun, so a resume still
gives the same images. Running out of device memory is not an image's fault
and stops the run with :class:`~nulltta.run.errors.RunOutOfMemoryError`;
an interrupt (``KeyboardInterrupt``, SIGTERM) is never caught here.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from .errors import RunOutOfMemoryError
from .plan import WorkItem

__all__ = ["Outcome", "align_batch", "out_of_memory_message"]


@dataclass
class Outcome:
    """What aligning one item gave: an image, or an error.

    Attributes
    ----------
    item : WorkItem
    image : PIL.Image.Image or None
        None when the item failed.
    reward : float or None
        Target reward of the image (NaN when the reward gave NaN).
    skipped_steps : int
        Inner steps skipped over the whole trajectory because the objective or
        its gradient was not finite.
    error, traceback : str or None
        For a failed item: ``"Type: message"`` and the formatted traceback.
    batch_size : int
        How many trajectories this item was aligned with (1 after a retry).
    seconds : float
        Wall time of the ``fit`` that made it.
    flags : list of str
        ``"skipped-inner-steps"``, ``"non-finite-reward"``: the image was made,
        but something in its run needs a look.

    """

    item: WorkItem
    image: Image.Image | None = None
    reward: float | None = None
    skipped_steps: int = 0
    error: str | None = None
    traceback: str | None = None
    batch_size: int = 1
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Whether no image was made."""
        return self.image is None

    @property
    def status(self) -> str:
        """``"failed"`` (no image), ``"flagged"`` (an image, with flags) or ``"ok"``."""
        if self.failed:
            return "failed"
        return "flagged" if self.flags else "ok"


def out_of_memory_message(batch_size: int, resolution: Any, in_batch: bool = True) -> str:
    """The one error for running out of device memory: the three ways to need less."""
    size = f" at {resolution[0]}x{resolution[1]}" if resolution else ""
    where = f"aligning {batch_size} image(s) at once{size}" if in_batch else "outside a batch"
    smaller = f" (e.g. {batch_size // 2})" if batch_size > 1 else ""
    return (
        f"the device ran out of memory {where}. "
        f"Lower --batch-size{smaller}: finished images are kept, and a rerun in the same "
        "--out folder with a smaller --batch-size continues the run. Or need less memory per "
        "image: gradient checkpointing (--gradient-checkpointing; "
        "NullTextAligner(gradient_checkpointing=True)) recomputes the UNet and VAE activations "
        "in the backward pass, and --decode-scale 0.5 (decode_scale=0.5) decodes the inner "
        "loop's x0 estimate at half resolution for the reward gradient."
    )


def _fit(aligner: Any, items: Sequence[WorkItem]) -> list[Outcome]:
    started = time.perf_counter()
    aligner.fit([item.prompt for item in items], seeds=[item.seed for item in items])
    seconds = time.perf_counter() - started
    outcomes = []
    for item, image, reward, history in zip(
        items, aligner.images_, aligner.rewards_, aligner.histories_, strict=True
    ):
        skipped = int(sum(history[:, "skipped_steps"]))
        flags = []
        if skipped:
            flags.append("skipped-inner-steps")
        if not math.isfinite(reward):
            flags.append("non-finite-reward")
        outcomes.append(
            Outcome(
                item,
                image,
                float(reward),
                skipped,
                batch_size=len(items),
                seconds=seconds,
                flags=flags,
            )
        )
    return outcomes


def align_batch(aligner: Any, items: Sequence[WorkItem]) -> list[Outcome]:
    """Align ``items`` together; on an error, one at a time; one outcome per item.

    Parameters
    ----------
    aligner : NullTextAligner
        With ``batch_size`` at least ``len(items)``.
    items : sequence of WorkItem

    Raises
    ------
    RunOutOfMemoryError
        When the device runs out of memory (the message names the fixes).

    """
    try:
        return _fit(aligner, items)
    except torch.OutOfMemoryError as error:
        raise RunOutOfMemoryError(
            out_of_memory_message(len(items), getattr(aligner, "resolution_", None))
        ) from error
    except Exception as error:  # the reward or the model failed on some item of the batch
        if len(items) > 1:
            return [outcome for item in items for outcome in align_batch(aligner, [item])]
        return [
            Outcome(
                items[0],
                error=f"{type(error).__name__}: {error}",
                traceback="".join(traceback.format_exception(error)),
            )
        ]
