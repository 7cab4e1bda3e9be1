"""Prompt fidelity against target reward for Null-TTA's KL settings, on ShapesBench.

    python benchmarks/regularisation.py --out benchmarks/results/regularisation

ShapesBench's hidden preference includes shape-background colour contrast, so
a reward-only optimiser can raise it by changing the colours the prompt asked
for. The KL terms are what stop that. This script runs Null-TTA with the
release's KL settings (the baseline) and with stronger or un-annealed KL on
the same (prompt, seed) pairs, through the benchmark runner (resumable), and
prints per setting the change of target, held-out rewards and fidelity
against the baseline, with plain sampling as the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SETTINGS = {
    "nulltta-release": "release: kl_weight 0.002, paper KL, annealed to 0 (baseline)",
    "nulltta-release:kl_weight=0.02": "kl_weight x10",
    "nulltta-release:kl_weight=0.2": "kl_weight x100",
    "nulltta-release:kl_weight=2.0": "kl_weight x1000",
    "nulltta-release:anneal_kl=false": "no annealing (KL at full weight to the end)",
    "nulltta:anneal_kl=false:kl_weight=0.005": "no annealing, kl_weight x2.5",
    "nulltta:anneal_kl=false:kl_weight=0.01": "no annealing, kl_weight x5",
    "nulltta:anneal_kl=false:kl_weight=0.02": "no annealing, kl_weight x10",
    "nulltta:anneal_kl=false:kl_weight=0.05": "no annealing, kl_weight x25",
    "nulltta:anneal_kl=false:kl_weight=0.2": "no annealing, kl_weight x100",
    "nulltta:anneal_kl=false:kl_weight=1.0": "no annealing, kl_weight x500",
    "nulltta-release:kl_mode=exact": "exact transition KL instead of the paper's",
    "nulltta-release:kl_mode=exact:kl_weight=0.2": "exact KL, kl_weight x100",
    "plain": "plain CFG sampling (reference)",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/regularisation")
    parser.add_argument("--prompts", type=int, default=8, help="first N ShapesBench prompts")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    from nulltta.bench.runner import load_rows
    from nulltta.bench.shapesbench import GUIDANCE_SCALE
    from nulltta.bench.variants import run_shapesbench_variants, variant_table

    out = Path(args.out)
    if not args.table_only:
        status = run_shapesbench_variants(
            out, args.settings, args.prompts, args.seeds, args.steps,
            "ShapesBench: Null-TTA KL settings", args.shard,
        )  # fmt: skip
        if status:
            return status
    rows = load_rows(out)
    described = {k: SETTINGS.get(k, k) for k in args.settings}
    text = (
        f"# KL settings on ShapesBench\n\n{len({(r['prompt'], r['seed']) for r in rows})} "
        f"(prompt, seed) pairs, {args.steps} steps, CFG {GUIDANCE_SCALE}. Differences are "
        "against `nulltta-release` (the release's KL settings) on the same pairs.\n\n"
        + variant_table(rows, described, "nulltta-release")
    )
    (out / "regularisation.md").write_text(text)
    (out / "regularisation.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
