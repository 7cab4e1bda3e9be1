"""Run history: one row per denoising step, one sub-row per inner step.

Indexed like skorch's history: ``history[:, "reward"]`` gives the reward of
every step, ``history[-1, "inner", :, "objective"]`` the objective of every
inner step of the last one. Values are JSON-safe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["History"]


def _index(obj: Any, keys: tuple[Any, ...]) -> Any:
    if not keys:
        return obj
    key, rest = keys[0], keys[1:]
    if isinstance(key, slice):
        return [_index(item, rest) for item in obj[key]]
    if isinstance(key, str):
        if not isinstance(obj, dict):
            raise KeyError(f"cannot look up {key!r} in a {type(obj).__name__}; index rows first")
        if key not in obj:
            raise KeyError(f"no column {key!r}; the rows have {sorted(obj)}")
        return _index(obj[key], rest)
    return _index(obj[key], rest)


class History(list):
    """A list of step rows (dicts) with tuple indexing.

    Examples
    --------
    >>> h = History([{"reward": 1.0, "inner": [{"objective": 2.0}]}])
    >>> h[:, "reward"]
    [1.0]
    >>> h[0, "inner", :, "objective"]
    [2.0]

    """

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            return _index(list(self), key)
        result = super().__getitem__(key)
        return History(result) if isinstance(key, slice) else result

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON, and write it to ``path`` if given."""
        text = json.dumps(list(self), indent=1)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> History:
        """Read a history written by :meth:`to_json`."""
        path = Path(text_or_path)
        text = path.read_text() if path.suffix == ".json" and path.exists() else str(text_or_path)
        return cls(json.loads(text))
