"""nulltta: test-time alignment of text-to-image diffusion models via null-text optimisation.

The entry point is :class:`NullTextAligner`; the method's equations are in
:mod:`nulltta.equations`, one function each. The names below are imported on
first use, so ``import nulltta.cli`` (and ``nulltta --help``) does not pay for
loading PyTorch, Lightning and diffusers up front.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "AlignmentConfig": ".config",
    "History": ".history",
    "NotFittedError": ".errors",
    "NullTTAError": ".errors",
    "NullTextAligner": ".aligner",
    "NullTextModule": ".module",
    "Reward": ".rewards",
    "get_reward": ".rewards",
}

__all__ = [*sorted(_LAZY), "__version__"]


def __getattr__(name: str) -> Any:
    """Import ``nulltta.<name>`` from its module the first time it is asked for."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nulltta' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
