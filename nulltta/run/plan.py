"""The work plan: which (prompt, seed) pairs form which batch, and which rank runs it.

The plan depends only on the prompts, the seeds and the batch size, never on
the number of processes: the pairs are listed prompt by prompt (each prompt
with every seed, in the order given) and cut into consecutive batches of
``batch_size``. A batch's trajectories are aligned together, and a batch of
``B`` equals its ``B`` trajectories run one by one only up to float
rounding, so fixing the batches is what makes two processes give the same
PNG bytes as one, and a resumed run the same bytes as an uninterrupted one.

:func:`share_of` then deals the batches still to do round-robin to the
ranks: which rank runs a batch changes nothing in its images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from .errors import RunError

__all__ = ["Batch", "WorkItem", "make_plan", "share_of"]

T = TypeVar("T")


@dataclass(frozen=True)
class WorkItem:
    """One image of the run: a prompt with a seed.

    Attributes
    ----------
    index : int
        Position in the run's list of pairs.
    prompt_index : int
        Position of the prompt in the prompt set.
    prompt : str
    seed : int
    key : str
        The image's name, e.g. ``"p0003-s1"`` (file ``images/p0003-s1.png``).

    """

    index: int
    prompt_index: int
    prompt: str
    seed: int
    key: str

    @property
    def file(self) -> str:
        """Path of the aligned image, relative to the output folder."""
        return f"images/{self.key}.png"


@dataclass(frozen=True)
class Batch:
    """Trajectories aligned together: ``index`` in the plan, and its items."""

    index: int
    items: tuple[WorkItem, ...]


def make_plan(prompts: Sequence[str], seeds: Sequence[int], batch_size: int) -> list[Batch]:
    """Every (prompt, seed) pair, prompt-major, cut into batches of ``batch_size``.

    Raises
    ------
    RunError
        For no seeds, a repeated seed or a batch size below 1.

    """
    if not seeds:
        raise RunError("no seeds; pass --seeds, e.g. --seeds 0 1 2")
    if len(set(seeds)) != len(seeds):
        raise RunError(f"--seeds {' '.join(map(str, seeds))} repeats a seed; list each seed once")
    if batch_size < 1:
        raise RunError(f"--batch-size {batch_size} must be at least 1")
    width = max(4, len(str(len(prompts) - 1)))
    items = [
        WorkItem(
            index=p * len(seeds) + s,
            prompt_index=p,
            prompt=prompt,
            seed=int(seed),
            key=f"p{p:0{width}d}-s{seed}",
        )
        for p, prompt in enumerate(prompts)
        for s, seed in enumerate(seeds)
    ]
    return [
        Batch(index=i, items=tuple(items[start : start + batch_size]))
        for i, start in enumerate(range(0, len(items), batch_size))
    ]


def share_of(batches: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The batches rank ``rank`` runs: every ``world_size``-th, starting at ``rank``."""
    return list(batches[rank::world_size])
