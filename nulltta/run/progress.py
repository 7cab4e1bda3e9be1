"""A progress bar over the whole run, shown by rank 0, counting every rank's images.

Ranks run different numbers of batches, so a collective per batch would
make the ranks wait for each other. Instead rank 0 counts the rows every
rank has appended to its rows file during this run (rows carry the run
invocation's ``attempt`` id), from a background thread every few seconds
and whenever it finishes a batch itself. The output folder must be one
file system for all nodes anyway (rank 0 merges the manifest from it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .manifest import read_part_rows

__all__ = ["RunProgress"]


class RunProgress:
    """Images done across ranks out of the images this run has to make.

    Parameters
    ----------
    out : Path
        The output folder.
    todo : iterable of str
        Keys of the images this run makes (over every rank).
    attempt : str
        This run invocation's id (the ``attempt`` field of its rows).
    enabled : bool
        False on ranks other than 0, and with ``--quiet``: nothing is shown.
    interval : float, default=5.0
        Seconds between two counts by the background thread.

    """

    def __init__(
        self,
        out: Path,
        todo: Iterable[str],
        attempt: str,
        enabled: bool,
        interval: float = 5.0,
    ) -> None:
        self.out = out
        self.todo = set(todo)
        self.attempt = attempt
        self.enabled = enabled
        self.interval = interval
        self._bar: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunProgress:
        if self.enabled:
            self._bar = tqdm(total=len(self.todo), desc="nulltta run", unit="image")
            self._thread = threading.Thread(target=self._poll, name="run-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self.refresh()
            self._bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def refresh(self) -> None:
        """Count this run's rows in every rank's file and move the bar there."""
        if self._bar is None:
            return
        rows = read_part_rows(self.out, quiet=True)
        done = {
            r["key"] for r in rows if r.get("attempt") == self.attempt and r["key"] in self.todo
        }
        failed = sum(
            1 for r in rows if r.get("attempt") == self.attempt and r.get("status") == "failed"
        )
        with self._lock:
            self._bar.n = len(done)
            if failed:
                self._bar.set_postfix(failed=failed, refresh=False)
            self._bar.refresh()
