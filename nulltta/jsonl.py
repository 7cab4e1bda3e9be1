"""Append-only JSON-lines files that survive a crash in the middle of a write.

One row is one JSON object on one line. :func:`append_row` writes a row as a
single ``write`` followed by ``fsync``, so a crash can leave at most one
partial line, and only at the end of the file. Both functions deal with that
line:

- :func:`read_rows` returns every complete row and skips a partial last line,
  with a :class:`PartialRowWarning`;
- :func:`append_row` truncates a partial last line before it appends (a
  last line that is a whole row without its newline is kept and terminated).

A malformed line anywhere else cannot come from a crash of these writers, so
it raises ``ValueError`` instead of being dropped. Writers and readers take an
advisory lock (``fcntl.flock``, where the platform has it), so several
processes may append to one file (as the benchmark's shards do) and no
writer mistakes another's write in progress for a partial line.

>>> append_row(path, {"method": "plain", "seed": 0})
>>> read_rows(path)
[{'method': 'plain', 'seed': 0}]
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere the file is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PartialRowWarning", "append_row", "read_rows"]

_CHUNK = 1 << 16


class PartialRowWarning(UserWarning):
    """A JSON-lines file ends in a partial row (left by a crash during a write)."""


@contextlib.contextmanager
def _locked(fd: int, exclusive: bool) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _parse_row(line: bytes) -> dict[str, Any] | None:
    """The row on ``line``, or None when it is not one JSON object."""
    try:
        row = json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return None
    return row if isinstance(row, dict) else None


def _tail(fd: int, size: int) -> tuple[int, bytes]:
    """``(offset, text)`` of the file's last line: everything after its last newline."""
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            offset = start + newline + 1
            return offset, os.pread(fd, size - offset, offset)
        end = start
    return 0, os.pread(fd, size, 0)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every complete row of the JSON-lines file ``path``, in file order.

    Parameters
    ----------
    path : str or Path
        The file; a missing file has no rows.

    Returns
    -------
    list of dict
        One dict per complete line. Blank lines are skipped. A last line with
        no newline is kept when it is a whole JSON object, and otherwise
        skipped with a :class:`PartialRowWarning` (the next :func:`append_row`
        removes it).

    Raises
    ------
    ValueError
        When a line other than the last is not a JSON object: that is
        corruption a crash of :func:`append_row` cannot cause.

    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        with _locked(fd, exclusive=False):
            data = b"".join(iter(lambda: os.read(fd, _CHUNK), b""))
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    last = lines.pop()  # b"" when the file ends with a newline
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _parse_row(line)
        if row is None:
            raise ValueError(
                f"{path}, line {number}: not a JSON object ({line[:60]!r}...); only the last "
                "line can be partial after a crash, so this file was changed by something else"
            )
        rows.append(row)
    if last.strip():
        row = _parse_row(last)
        if row is None:
            warnings.warn(
                f"{path} ends in a partial row ({len(last)} bytes, left by an interrupted "
                "write); it is skipped, and the next append_row removes it",
                PartialRowWarning,
                stacklevel=2,
            )
        else:
            rows.append(row)
    return rows


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the JSON-lines file ``path`` as one line, durably.

    A partial last line (an interrupted earlier write) is truncated first,
    with a :class:`PartialRowWarning`; a last line that is a whole row
    missing its newline is kept and terminated. The row is then written with
    one ``write`` call and ``fsync``-ed before this returns, so a crash
    leaves either the whole row or a partial last line.

    Parameters
    ----------
    path : str or Path
        The file (created if missing; its folder must exist).
    row : dict
        JSON-serialisable (``NaN`` and ``inf`` are written as JSON's
        common extension, which :func:`read_rows` reads back).

    Raises
    ------
    TypeError
        When ``row`` is not a dict or not JSON-serialisable.

    """
    if not isinstance(row, dict):
        raise TypeError(f"a row is a dict, not a {type(row).__name__}")
    data = (json.dumps(row) + "\n").encode()  # json.dumps escapes newlines in strings
    path = Path(path)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        with _locked(fd, exclusive=True):
            size = os.fstat(fd).st_size
            offset, last = _tail(fd, size)
            if last:
                if _parse_row(last) is not None:
                    data = b"\n" + data
                else:
                    warnings.warn(
                        f"{path}: removed a partial last row ({len(last)} bytes, left by an "
                        "interrupted write) before appending",
                        PartialRowWarning,
                        stacklevel=2,
                    )
                    os.ftruncate(fd, offset)
            written = 0
            while written < len(data):  # one call in practice; os.write may be short
                written += os.write(fd, data[written:])
            os.fsync(fd)
    finally:
        os.close(fd)
    if created and hasattr(os, "O_DIRECTORY"):  # make the new file's name durable too
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
