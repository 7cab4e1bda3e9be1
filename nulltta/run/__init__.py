"""``nulltta run``: a prompt set on one or many devices, resumable.

The output folder::

    run.json              the settings that decide the images (a rerun must match them)
    images/p0003-s1.png   aligned image of prompt 3, seed 1, metadata in its text chunks
    rows/rank-00000.jsonl each process's rows, appended as images are finished
    manifest.jsonl        one row per image, in plan order (merged at the end)
    plain/p0003-s1.png    plain CFG sample with the same seed, for the grid
    grid.png              plain (top) against aligned (bottom) for the first prompts
    summary.md            rewards per prompt and overall, failures and flagged images

One concept per module: :mod:`~nulltta.run.prompts` (the prompts file),
:mod:`~nulltta.run.plan` (batches and ranks), :mod:`~nulltta.run.files`
(atomic writes, PNG metadata), :mod:`~nulltta.run.settings` (``run.json``),
:mod:`~nulltta.run.manifest` (rows with several writers),
:mod:`~nulltta.run.align` (one batch and its faults),
:mod:`~nulltta.run.model` (the model and rewards of a rank),
:mod:`~nulltta.run.worker` (one rank), :mod:`~nulltta.run.report` (the end),
:mod:`~nulltta.run.progress`, :mod:`~nulltta.run.shared` (one folder for
all nodes), :mod:`~nulltta.run.launch` (Fabric and signals) and
:mod:`~nulltta.run.cli`.
"""

from __future__ import annotations

from .cli import add_run_parser, run_run
from .errors import RunError, RunInterrupted, RunOutOfMemoryError

__all__ = ["RunError", "RunInterrupted", "RunOutOfMemoryError", "add_run_parser", "run_run"]
