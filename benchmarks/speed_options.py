"""Cost and quality of each speed option, end to end on ShapesBench.

    python benchmarks/speed_options.py --out benchmarks/results/speed_options

Runs Null-TTA with the paper schedule (the baseline) and with each option of
``nulltta.speedups`` on the same prompts and seeds, through the benchmark
runner (resumable), then prints per option: the time, peak-memory and
inner-step ratios to the baseline, and the change of the target and
held-out rewards and of fidelity (mean over the same (prompt, seed) pairs).
Plain sampling is run too, for the "aligned image in at most 15x the time of a
plain image" goal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OPTIONS = {
    "nulltta-release": "paper schedule and KL, no options (baseline)",
    "nulltta-release:gradient_checkpointing=true": "UNet + VAE gradient checkpointing",
    "nulltta-release:autocast_dtype=bfloat16": "bf16 autocast (UNet, VAE; fp32 reward)",
    "nulltta-release:decode_scale=0.5": "reward gradient through a half-resolution decode",
    "nulltta-release:early_stop_patience=3": "early stop after 3 inner steps without improvement",
    "nulltta-release:optimize_every=2": "optimise every other timestep (half the inner steps)",
    "nulltta-release:n_max=12": "n_max 12 instead of 25 (about half the inner steps)",
    "nulltta-release-fast": "fast settings: optimize_every=2, learning_rate=0.02",
    "nulltta": "the embedded model's KL defaults (kl_weight 0.2, no annealing)",
    "nulltta-fast": "the embedded model's KL defaults + fast settings",
    "plain": "plain CFG sampling (reference)",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="benchmarks/results/speed_options")
    parser.add_argument("--prompts", type=int, default=8, help="first N ShapesBench prompts")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--options", nargs="+", default=list(OPTIONS))
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    from nulltta.bench.runner import load_rows
    from nulltta.bench.shapesbench import GUIDANCE_SCALE
    from nulltta.bench.variants import run_shapesbench_variants, variant_table

    out = Path(args.out)
    if not args.table_only:
        status = run_shapesbench_variants(
            out, args.options, args.prompts, args.seeds, args.steps,
            "ShapesBench: Null-TTA speed options", args.shard,
        )  # fmt: skip
        if status:
            return status
    rows = load_rows(out)
    text = (
        f"# Speed options on ShapesBench\n\n{len({(r['prompt'], r['seed']) for r in rows})} "
        f"(prompt, seed) pairs, {args.steps} steps, CFG {GUIDANCE_SCALE}. Ratios and "
        "differences are against `nulltta-release` (paper schedule and KL, no options) on the "
        "same pairs; "
        "time and memory as in the main table (peak memory: median over images).\n\n"
        + variant_table(
            rows, {k: v for k, v in OPTIONS.items() if k in args.options}, "nulltta-release"
        )
    )
    (out / "speed_options.md").write_text(text)
    (out / "speed_options.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
