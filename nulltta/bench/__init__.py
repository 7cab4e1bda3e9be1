"""Benchmark harness: Null-TTA and its baselines side by side, with their costs.

Each method (:mod:`~nulltta.bench.plain`, :mod:`~nulltta.bench.best_of_n`,
:mod:`~nulltta.bench.nulltta_method`, :mod:`~nulltta.bench.dno`,
:mod:`~nulltta.bench.das`) implements :class:`~nulltta.bench.base.Method`;
:func:`~nulltta.bench.runner.run_benchmark` runs them over prompts and seeds
and :func:`~nulltta.bench.report.write_report` writes the table and plots.
The command line is ``nulltta bench`` (:mod:`nulltta.bench.cli`).
"""

from .base import Method, MethodOutput, Task, compressed_rate
from .best_of_n import BestOfN, matched_best_of_n
from .cost import CostCounter, Counts, measure
from .das import DAS
from .dno import DNO
from .methods import FAST_SETTINGS, METHOD_PRESETS, make_method
from .nulltta_method import GreedySelection, NullTTA
from .plain import PlainSampling
from .report import summarize, write_report
from .runner import load_rows, run_benchmark

__all__ = [
    "DAS",
    "DNO",
    "FAST_SETTINGS",
    "METHOD_PRESETS",
    "BestOfN",
    "CostCounter",
    "Counts",
    "GreedySelection",
    "Method",
    "MethodOutput",
    "NullTTA",
    "PlainSampling",
    "Task",
    "compressed_rate",
    "load_rows",
    "make_method",
    "matched_best_of_n",
    "measure",
    "run_benchmark",
    "summarize",
    "write_report",
]
