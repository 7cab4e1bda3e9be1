"""nulltta's own exceptions."""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as SklearnNotFittedError

__all__ = ["NotFittedError", "NullTTAError"]


class NullTTAError(Exception):
    """Base class of nulltta's own errors."""


class NotFittedError(NullTTAError, SklearnNotFittedError):
    """A method that needs a fitted aligner was called before ``fit``."""
