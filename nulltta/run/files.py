"""Files that are either whole or absent: atomic writes, PNGs with metadata.

Every file a run writes (images, ``run.json``, ``manifest.jsonl``,
``summary.md``, ``grid.png``) is written to a temporary file in the same
folder, flushed to disk, and renamed over its final name with
``os.replace``, which is atomic on POSIX and Windows file systems: a process
killed at any moment leaves the old file or the new one, never half of one.
The only thing a kill can leave is a temporary file (``.NAME.*.tmp``), which
:func:`remove_temporary_files` clears at the next start.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .errors import RunError

__all__ = [
    "atomic_write",
    "check_writable",
    "png_bytes",
    "read_png_metadata",
    "remove_temporary_files",
    "sha256",
]

_TMP_SUFFIX = ".tmp"


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; elsewhere a no-op)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partly written.

    The bytes go to a temporary file beside ``path`` (same folder, so the
    rename cannot cross file systems), are ``fsync``-ed, and the file is
    renamed over ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:  # a signal or a full disk: leave no temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def remove_temporary_files(folder: str | Path) -> int:
    """Delete the temporary files a killed writer left under ``folder``; return how many."""
    removed = 0
    for path in Path(folder).rglob(f".*{_TMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written in it.

    Called before any model is loaded, so that a wrong ``--out`` costs nothing.

    Raises
    ------
    RunError
        Naming the folder and the system's reason.

    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=_TMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        raise RunError(
            f"cannot write to the output folder {folder}: {reason}; pass --out a folder "
            "you can write to (it is created if missing)"
        ) from None
    return folder


def png_bytes(image: Image.Image, metadata: dict[str, Any]) -> bytes:
    """The PNG encoding of ``image`` with ``metadata`` as text chunks.

    Strings are stored as they are (so any PNG viewer shows the prompt),
    everything else as JSON, listed in a ``json_keys`` chunk for
    :func:`read_png_metadata`. The encoding is deterministic: the same pixels
    and metadata give the same bytes.
    """
    info = PngImagePlugin.PngInfo()
    json_keys = [key for key, value in metadata.items() if not isinstance(value, str)]
    for key, value in metadata.items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    info.add_text("json_keys", json.dumps(json_keys))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def read_png_metadata(path: str | Path) -> dict[str, Any]:
    """The text chunks of a PNG written by :func:`png_bytes`.

    Values written from strings are returned as strings; the others are
    decoded from JSON (the writer records which in the ``json_keys`` chunk).
    """
    with Image.open(path) as image:
        text = dict(image.text)
    json_keys = set(json.loads(text.pop("json_keys", "[]")))
    return {key: json.loads(value) if key in json_keys else value for key, value in text.items()}


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
