"""``run.json``: the settings that decide a run's images, checked on every rerun.

A rerun in the same folder continues the run only if everything that
decides the images is the same: the model, the reward, every method
setting, the image size and precision, the accelerator type, the prompts,
the seeds and the held-out rewards. Anything else would mix images made two
ways in one folder, so it is refused with an error that names the settings
that differ and the fix.

What does not decide the images is left out and may change between runs:
the number of devices and nodes, and the batch size (a batch equals its
trajectories run one by one up to float rounding; keeping ``--batch-size``
is what keeps a resume byte-identical).

Every process computes the same settings and writes the same bytes, so
processes that create ``run.json`` at the same moment cannot disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import RunError
from .files import atomic_write

__all__ = ["RUN_FILE", "check_or_record_settings"]

RUN_FILE = "run.json"
_FORMAT = 1


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_or_record_settings(out: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in ``out/run.json``, or check them against the recorded ones.

    Parameters
    ----------
    out : Path
        The output folder (writable).
    settings : dict
        JSON-safe settings that decide the images.

    Raises
    ------
    RunError
        When ``out`` holds a run with other settings, naming each difference.

    """
    path = out / RUN_FILE
    settings = json.loads(json.dumps(settings))  # the form they take once read back
    if not path.exists():
        record = {"format": _FORMAT, "settings": settings}
        atomic_write(path, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
        return
    try:
        recorded = json.loads(path.read_text())["settings"]
    except (ValueError, KeyError, TypeError):
        raise RunError(
            f"{path} is not a nulltta run file; pass --out a new folder, or remove {path}"
        ) from None
    differences = [
        f"{key}: {_describe(recorded.get(key))} in {out}, {_describe(settings.get(key))} now"
        for key in sorted(set(recorded) | set(settings))
        if recorded.get(key) != settings.get(key)
    ]
    if differences:
        listed = "\n  ".join(differences)
        raise RunError(
            f"{out} holds a run with other settings:\n  {listed}\n"
            f"pass --out a new folder for these settings, or rerun with those in {path} "
            "to resume that run"
        )
