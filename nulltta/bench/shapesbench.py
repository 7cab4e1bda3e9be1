"""The ShapesBench 2 results table: every method on the embedded model, one command.

    python -m nulltta.bench.shapesbench --out benchmarks/results/shapesbench2 --parallel 2

runs ``nulltta bench`` on the embedded 32x32 model with 16 prompts x 3 seeds
(:func:`shapesbench_prompts`), target ``shapes-preference``; held-out
``shapes-preference-heldout``, ``shapes-manifold`` and the gold reward
``shapes-gold`` (the model's profile); prompt fidelity by the ShapesBench
classifier and the Frechet distance of each method's images; and writes
``results.json``, ``results.md``, ``pareto.png`` and ``grids/``. It is
resumable, and ``--parallel 2`` splits the pairs over two processes. The
world and protocol are fixed in ``docs/concepts/shapesbench.md``.

``--print-command`` shows the equivalent ``nulltta bench`` call.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from ..shapes.profile import embedded_profile
from .base import compressed_rate
from .best_of_n import matched_best_of_n

__all__ = ["bench_arguments", "main", "method_specs", "shapesbench_prompts"]

STEPS = 20
GUIDANCE_SCALE = embedded_profile().defaults["guidance_scale"]  # the embedded model's CFG
SEEDS = (0, 1, 2)
NUM_PROMPTS = 16
NOTE = (
    "ShapesBench 2 (docs/concepts/shapesbench.md). Budgets: best-of-N and DNO are matched "
    "to Null-TTA's UNet passes, DAS roughly (see `nulltta.bench.shapesbench.method_specs`). "
    "Times are wall-clock on a 2-core CPU (two benchmark processes of 1 thread each): compare "
    "them loosely and rely on the network counts, which are exact. Gold: `shapes-gold`, the "
    "true preference measured from the pixels, gated on prompt match; no method sees it. "
    "Fidelity: fraction of images whose shape, colour and background the ShapesBench "
    "classifier reads as the prompt's. FD: Frechet distance of each method's images to clean "
    "world images in the classifier's features. `nulltta`: the embedded model's defaults; "
    "`nulltta-release`: the release's KL and step size (lambda2 0.002 annealed, lr 0.01); "
    "`nulltta-manifold`: phi' = text_encoder(e') (beyond the paper)."
)


def shapesbench_prompts(n: int = NUM_PROMPTS) -> list[str]:
    """``n`` prompts that cycle through every shape, colour and background."""
    from ..shapes.world import BACKGROUNDS, COLORS, SHAPES, make_prompt

    return [
        make_prompt(SHAPES[i % len(SHAPES)], COLORS[i % len(COLORS)], BACKGROUNDS[(i // 4) % 4])
        for i in range(n)
    ]


def method_specs(steps: int = STEPS) -> list[str]:
    """Every method, with budgets matched to Null-TTA's paper schedule where they have one.

    - best-of-N: N plain samples with the UNet passes of one Null-TTA image
      (:func:`~nulltta.bench.best_of_n.matched_best_of_n`);
    - DNO: iterations of 6T UNet passes each (forward, checkpoint
      recomputation, backward of a CFG chain) to about the same total;
    - DAS: 8 particles (4 in the paper at 100 steps): a CFG forward and
      backward per particle and step, 4N UNet passes per step, about the same total;
    - DNO's learning rate (0.05) and DAS's ``alpha`` (0.003) were chosen for the
      highest target reward among 0.01/0.05/0.2 and 0.003/0.01/0.03/0.1 on 4
      prompts x 1 seed with an intermediate checkpoint of the model; ``alpha``
      then puts reward differences of about 0.2 at about 70 nats, close to
      DAS's own choices for PickScore and aesthetic;
    - Null-TTA: the release's schedule (n_min 5, n_max 25, K = 3) compressed to
      T steps: with the model's defaults (``nulltta``), the fast settings
      (``nulltta-fast``), the release's KL and step size (``nulltta-release``),
      and phi' on the text manifold (``nulltta-manifold``).
    """
    n = matched_best_of_n(steps, 5, 25, compressed_rate(steps), 3)
    dno_iterations = max(1, round(n * 2 * steps / (6 * steps)))
    return [
        "plain",
        f"best-of-n:n={n}",
        "greedy",
        f"dno:iterations={dno_iterations}:learning_rate=0.05",
        f"dno-noreg:iterations={dno_iterations}:learning_rate=0.05",
        "das:num_particles=8:kl_coeff=0.003",
        "nulltta-release",
        "nulltta",
        "nulltta-fast",
        "nulltta-manifold",
    ]


def bench_arguments(out: str, prompts_file: str, steps: int, seeds: list[int]) -> list[str]:
    """The ``nulltta bench`` arguments of the ShapesBench table."""
    return [
        "bench",
        "--model", "embedded",
        "--target", "shapes-preference",
        "--heldout", "shapes-preference-heldout", "shapes-manifold", "shapes-gold",
        "--fidelity", "auto",
        "--methods", *method_specs(steps),
        "--prompts", prompts_file,
        "--seeds", *map(str, seeds),
        "--steps", str(steps),
        "--guidance-scale", str(GUIDANCE_SCALE),
        "--title", "ShapesBench 2: Null-TTA and baselines",
        "--note", NOTE,
        "--out", out,
        "--threads", "1",
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Write the prompts, run (or resume) every method, then the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/shapesbench2")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--prompts", type=int, default=NUM_PROMPTS, help="number of prompts")
    parser.add_argument("--parallel", type=int, default=1, help="processes (1 thread each)")
    parser.add_argument("--print-command", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prompts_file = out / "prompts.txt"
    prompts_file.write_text("\n".join(shapesbench_prompts(args.prompts)) + "\n")
    arguments = bench_arguments(str(out), str(prompts_file), args.steps, args.seeds)
    if args.print_command:
        print("nulltta " + shlex.join(arguments))
        return 0
    from ..cli import main as nulltta_main

    if args.parallel == 1:
        return nulltta_main(arguments)
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "nulltta.cli", *arguments, "--shard", f"{i}/{args.parallel}"]
            + (["--quiet"] if i else [])
        )
        for i in range(args.parallel)
    ]
    if any(worker.wait() for worker in workers):
        return 1
    return nulltta_main(["bench", "--model", "embedded", "--report-only", "--out", str(out)])


if __name__ == "__main__":
    sys.exit(main())
