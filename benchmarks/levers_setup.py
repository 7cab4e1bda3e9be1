"""What the levers follow-up's scripts share: their options and the pairs they run on.

``null_levers.py`` (Parts A to F) and ``null_oracle.py`` (Part G) run on the
main table's pairs with the embedded model, one core each by default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

#: The main table's seeds: each prompt runs with every one of them.
SEEDS = (0, 1, 2)


def add_run_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """Add the options both scripts take.

    ``--out`` (default ``out``), ``--prompts``, ``--batch-size``, ``--threads``
    and ``--report-only``.
    """
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--prompts", type=int, default=16, help="the first N table prompts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")


def table_world(prompts: int, threads: int) -> tuple:
    """The embedded pipeline, its evaluation scorers, and the pairs to run.

    Sets torch to ``threads`` threads (denormals flushed, as the table ran).

    Returns
    -------
    tuple
        ``(pipe, scorers, pairs)``; ``pairs`` is the first ``prompts``
        ShapesBench prompts, each with every seed of :data:`SEEDS`.
    """
    from nulltta.bench.scoring import evaluation_scorers
    from nulltta.bench.shapesbench import shapesbench_prompts
    from nulltta.profiles import model_profile
    from nulltta.shapes.model import load_embedded_pipeline

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    pipe = load_embedded_pipeline()
    scorers = evaluation_scorers(model_profile("embedded"))
    pairs = [(p, s) for p in shapesbench_prompts(prompts) for s in SEEDS]
    return pipe, scorers, pairs
