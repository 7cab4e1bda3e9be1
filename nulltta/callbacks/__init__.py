"""Lightning callbacks of the alignment loop, one per file."""

from .annealing import KLAnnealing
from .defaults import method_callbacks
from .fixed_null import FixedNullTrajectory
from .greedy import GreedySelection, pick_best
from .memory import MemoryProfiler, peak_rss_mb, reset_peak_rss
from .progress import AlignmentProgressBar

__all__ = [
    "AlignmentProgressBar",
    "FixedNullTrajectory",
    "GreedySelection",
    "KLAnnealing",
    "MemoryProfiler",
    "method_callbacks",
    "peak_rss_mb",
    "pick_best",
    "reset_peak_rss",
]
