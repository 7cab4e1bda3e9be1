"""The manifest: one JSON row per image, kept safe with several writers.

Each process appends its rows to its own file, ``rows/rank-NNNNN.jsonl``
(:func:`nulltta.jsonl.append_row`: one ``write`` and an ``fsync`` per row, a
partial last line from a crash is dropped on the next append). No file ever
has two writers, so rows cannot interleave, and nothing depends on file
locks or on appends being atomic, which network file systems (NFS, Lustre)
used by clusters do not promise across nodes.

At the end of a run (and when a run is interrupted), rank 0 merges the rank
files into ``manifest.jsonl``: one row per image of the plan, in plan
order, written atomically. A row counts only if its image is on disk with
the recorded SHA-256, so an image is finished exactly when both its PNG
and its row are there; a rerun redoes the rest.

Row fields: ``key``, ``index``, ``prompt_index``, ``prompt``, ``seed``,
``file``, ``sha256``, ``status`` (``"ok"``, ``"flagged"`` or ``"failed"``),
``reward`` (target), ``reward_name``, ``heldout`` (name -> value),
``skipped_steps``, ``flags``, ``error`` and ``traceback`` (failed images),
``truncated``, ``batch``, ``batch_size``, ``rank``, ``attempt`` (the run
invocation), ``batch_seconds`` and ``finished_at``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..jsonl import PartialRowWarning, append_row, read_rows
from .files import atomic_write, sha256
from .plan import Batch

__all__ = [
    "FINISHED",
    "MANIFEST_FILE",
    "append_part_row",
    "chosen_rows",
    "read_part_rows",
    "write_manifest",
]

MANIFEST_FILE = "manifest.jsonl"
PARTS_FOLDER = "rows"
#: Statuses of an image that a rerun keeps; a ``"failed"`` image is tried again.
FINISHED = ("ok", "flagged")


def part_path(out: Path, rank: int) -> Path:
    """The rows file of global rank ``rank``."""
    return out / PARTS_FOLDER / f"rank-{rank:05d}.jsonl"


def append_part_row(out: Path, rank: int, row: dict[str, Any]) -> None:
    """Append ``row`` to the rows file of ``rank`` (durable when this returns)."""
    path = part_path(out, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    append_row(path, row)


def read_part_rows(out: Path, quiet: bool = False) -> list[dict[str, Any]]:
    """Every complete row of every rank's file (a partial last line is skipped).

    ``quiet`` silences the warning about a partial last line: a file another
    process is appending to may be read in the middle of a write.
    """
    rows: list[dict[str, Any]] = []
    for path in sorted((out / PARTS_FOLDER).glob("rank-*.jsonl")):
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", PartialRowWarning)
            rows += read_rows(path)
    return rows


def _intact(out: Path, row: dict[str, Any], digests: dict[str, str | None]) -> bool:
    """Whether the row's image is on disk with the recorded SHA-256 (files read once)."""
    name = row.get("file")
    if not name:
        return False
    if name not in digests:
        try:
            digests[name] = sha256((out / name).read_bytes())
        except OSError:
            digests[name] = None
    return digests[name] == row.get("sha256")


def chosen_rows(out: Path, keys: Iterable[str], rows: Sequence[dict[str, Any]]) -> dict[str, dict]:
    """The row that stands for each image of ``keys``.

    That is the last finished row whose PNG is intact, else the last failed
    row; an image with neither (not done yet, or its PNG lost) has no entry.
    """
    wanted = set(keys)
    digests: dict[str, str | None] = {}
    finished: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r.get("finished_at", 0.0)):
        key = row.get("key")
        if key not in wanted:
            continue
        if row.get("status") in FINISHED and _intact(out, row, digests):
            finished[key] = row
        elif row.get("status") == "failed":
            failed[key] = row
    return {**failed, **finished}


def write_manifest(out: Path, plan: Sequence[Batch], rows: Sequence[dict[str, Any]]) -> list[dict]:
    """Write ``manifest.jsonl``: the chosen row of every image of ``plan``, in plan order.

    Returns
    -------
    list of dict
        The rows written.

    """
    keys = [item.key for batch in plan for item in batch.items]
    chosen = chosen_rows(out, keys, rows)
    ordered = [chosen[key] for key in keys if key in chosen]
    text = "".join(json.dumps(row) + "\n" for row in ordered)
    atomic_write(out / MANIFEST_FILE, text.encode())
    return ordered
