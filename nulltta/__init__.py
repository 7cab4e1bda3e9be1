"""nulltta: test-time alignment of text-to-image diffusion models via null-text optimisation.

The entry point is :class:`NullTextAligner`; the method's equations are in
:mod:`nulltta.equations`, one function each.
"""

from .aligner import NotFittedError, NullTextAligner, NullTTAError
from .config import AlignmentConfig
from .history import History
from .module import NullTextModule
from .rewards import Reward, get_reward

__version__ = "0.1.0"

__all__ = [
    "AlignmentConfig",
    "History",
    "NotFittedError",
    "NullTTAError",
    "NullTextAligner",
    "NullTextModule",
    "Reward",
    "__version__",
    "get_reward",
]
