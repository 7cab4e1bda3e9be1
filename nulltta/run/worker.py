"""What each process of a run does, from loading the model to its last image.

:func:`run_worker` is the function Lightning Fabric launches on every rank:

1. load the model, the target reward and the held-out rewards, and check
   every prompt against the model (all before the first image);
2. rank 0 reads what earlier runs finished and broadcasts the batches still
   to do, so every rank works from the same list (and every rank checks it
   sees the folder rank 0 writes to);
3. each rank aligns its share (batch ``j`` of that list goes to rank
   ``j mod world_size``), writes each image atomically and then its row;
4. after a barrier, rank 0 makes the plain images for the grid and writes
   ``manifest.jsonl``, ``grid.png`` and ``summary.md``.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import torch

from .align import Outcome, align_batch
from .files import atomic_write, png_bytes, remove_temporary_files, sha256
from .job import RunJob
from .manifest import FINISHED, append_part_row, chosen_rows, read_part_rows, write_manifest
from .model import LoadedModel, load_model, score_heldout
from .plan import Batch, share_of
from .progress import RunProgress
from .report import finish_run
from .shared import clear_marks, leave_mark, wait_for_mark

__all__ = ["run_worker", "write_outcomes"]


def _image_metadata(model: LoadedModel, outcome: Outcome, heldout: dict, job: RunJob) -> dict:
    """What the PNG says about itself: nothing that depends on timing, rank or batch."""
    aligner, item = model.aligner, outcome.item
    return {
        "prompt": item.prompt,
        "seed": item.seed,
        "key": item.key,
        "model": str(job.aligner_kwargs.get("pipeline")),
        "reward_name": model.reward_name,
        "reward": outcome.reward,
        "heldout": heldout,
        "skipped_steps": outcome.skipped_steps,
        "flags": outcome.flags,
        "truncated": item.prompt_index in model.truncated,
        "resolution": list(aligner.resolution_),
        "config": aligner.config_.to_dict(),
        "method": "null-tta",
    }


def write_outcomes(
    job: RunJob,
    model: LoadedModel,
    batch: Batch,
    outcomes: list[Outcome],
    skip: set[str],
    rank: int,
    attempt: str,
) -> None:
    """Write each new image (atomically), then its row; items in ``skip`` are kept as they are."""
    made = [o for o in outcomes if not o.failed and o.item.key not in skip]
    scores, errors = score_heldout(
        model.heldout, [o.image for o in made], [o.item.prompt for o in made]
    )
    for position, outcome in enumerate(made):
        heldout = {name: values[position] for name, values in scores.items()}
        flags = list(outcome.flags)
        if any(v is not None and not math.isfinite(v) for v in heldout.values()):
            flags.append("non-finite-heldout")
        if errors:
            flags.append("heldout-error")
        outcome.flags = flags
        data = png_bytes(outcome.image, _image_metadata(model, outcome, heldout, job))
        atomic_write(job.out / outcome.item.file, data)
        row = _row(model, outcome, batch, rank, attempt)
        row.update(sha256=sha256(data), heldout=heldout, heldout_errors=errors or None)
        append_part_row(job.out, rank, row)
    for outcome in outcomes:
        if outcome.failed and outcome.item.key not in skip:
            append_part_row(job.out, rank, _row(model, outcome, batch, rank, attempt))


def _row(model: LoadedModel, outcome: Outcome, batch: Batch, rank: int, attempt: str) -> dict:
    item = outcome.item
    return {
        "key": item.key,
        "index": item.index,
        "prompt_index": item.prompt_index,
        "prompt": item.prompt,
        "seed": item.seed,
        "file": None if outcome.failed else item.file,
        "sha256": None,
        "status": outcome.status,
        "reward_name": model.reward_name,
        "reward": outcome.reward,
        "heldout": {},
        "heldout_errors": None,
        "skipped_steps": outcome.skipped_steps,
        "flags": outcome.flags,
        "error": outcome.error,
        "traceback": outcome.traceback,
        "truncated": item.prompt_index in model.truncated,
        "batch": batch.index,
        "batch_size": outcome.batch_size,
        "rank": rank,
        "attempt": attempt,
        "batch_seconds": round(outcome.seconds, 3),
        "finished_at": time.time(),
    }


def _todo(job: RunJob) -> list[tuple[int, list[str], bool]]:
    """What is left of the plan: ``(batch index, keys finished in it, retry only)``.

    A batch with an image never made (or lost) is redone whole, with the same
    trajectories together, so the same numbers, but only its missing images
    are written. A batch whose only unfinished images are ones that failed
    was already split into single images by :func:`align_batch`, so only
    those are aligned again, one at a time, as then.
    """
    keys = [item.key for batch in job.plan for item in batch.items]
    chosen = chosen_rows(job.out, keys, read_part_rows(job.out))
    todo = []
    for batch in job.plan:
        status = {item.key: chosen.get(item.key, {}).get("status") for item in batch.items}
        done = [key for key, s in status.items() if s in FINISHED]
        if len(done) < len(batch.items):
            retry_only = all(s in FINISHED or s == "failed" for s in status.values())
            todo.append((batch.index, done, retry_only))
    return todo


def _align(model: LoadedModel, batch: Batch, done: set[str], retry_only: bool) -> list[Outcome]:
    if not retry_only:
        return align_batch(model.aligner, batch.items)
    left = [item for item in batch.items if item.key not in done]
    return [outcome for item in left for outcome in align_batch(model.aligner, [item])]


def run_worker(fabric: Any, job: RunJob) -> dict[str, Any]:
    """Do this rank's part of the run (launched on every rank by ``fabric.launch``).

    Returns
    -------
    dict
        On rank 0 the run's counts (``images``, ``ok``, ``flagged``, ``failed``,
        ``missing``); on other ranks those of its own batches.

    """
    try:
        return _work(fabric, job)
    finally:
        # Leave no process group behind, so a later run in this process can start one.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _work(fabric: Any, job: RunJob) -> dict[str, Any]:
    rank, world = fabric.global_rank, fabric.world_size
    rank0 = rank == 0
    model = load_model(job, fabric.device, show_progress=rank0 and job.progress)
    state = None
    if rank0:
        remove_temporary_files(job.out)  # left by a killed writer; no rank writes yet
        state = {"attempt": uuid.uuid4().hex, "todo": _todo(job)}
        leave_mark(job.out, state["attempt"])
    state = fabric.broadcast(state, src=0)
    if not rank0:
        wait_for_mark(job.out, state["attempt"])
    todo = [(job.plan[index], set(done), retry) for index, done, retry in state["todo"]]
    todo_keys = [i.key for batch, done, _ in todo for i in batch.items if i.key not in done]
    counts = {"ok": 0, "flagged": 0, "failed": 0}
    progress = RunProgress(job.out, todo_keys, state["attempt"], enabled=rank0 and job.progress)
    try:
        with progress:
            for batch, done, retry_only in share_of(todo, rank, world):
                outcomes = _align(model, batch, done, retry_only)
                write_outcomes(job, model, batch, outcomes, done, rank, state["attempt"])
                for outcome in outcomes:
                    if outcome.item.key not in done:
                        counts[outcome.status] += 1
                progress.refresh()
        fabric.barrier()
    except KeyboardInterrupt:
        if rank0:  # list what is finished so far; the rank files stay the record
            write_manifest(job.out, job.plan, read_part_rows(job.out, quiet=True))
        raise
    if not rank0:
        return counts
    clear_marks(job.out)
    return finish_run(job, model)
