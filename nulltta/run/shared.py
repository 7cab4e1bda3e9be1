"""Checking that every rank sees the same output folder.

Ranks write their images and rows into ``--out`` and rank 0 merges them, so
``--out`` must be one file system for all nodes (NFS, Lustre, GPFS...), not
a node's local disk. Rank 0 leaves a mark named after the run invocation
before the work is dealt; every other rank looks for it, and stops with an
error naming the fix if it cannot see it. Network file systems may show a
new file to other nodes a little late, so they wait up to ``timeout``
seconds before failing.
"""

from __future__ import annotations

import time
from pathlib import Path

from .errors import RunError
from .files import atomic_write
from .manifest import PARTS_FOLDER

__all__ = ["clear_marks", "leave_mark", "wait_for_mark"]


def _mark(out: Path, attempt: str) -> Path:
    return out / PARTS_FOLDER / f"attempt-{attempt}.mark"


def clear_marks(out: Path) -> None:
    """Remove the marks of this and earlier run invocations."""
    for path in (out / PARTS_FOLDER).glob("attempt-*.mark"):
        path.unlink(missing_ok=True)


def leave_mark(out: Path, attempt: str) -> None:
    """Rank 0: leave this invocation's mark (earlier ones are removed)."""
    clear_marks(out)
    atomic_write(_mark(out, attempt), attempt.encode())


def wait_for_mark(out: Path, attempt: str, timeout: float = 60.0) -> None:
    """Other ranks: wait until rank 0's mark is visible here.

    Raises
    ------
    RunError
        When it does not appear within ``timeout`` seconds.

    """
    deadline = time.monotonic() + timeout
    while not _mark(out, attempt).exists():
        if time.monotonic() > deadline:
            raise RunError(
                f"this process cannot see what rank 0 wrote to {out}: --out must be a folder "
                "on a file system every node shares (e.g. NFS or Lustre), not a node's local disk"
            )
        time.sleep(0.5)
