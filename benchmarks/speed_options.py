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

import sys

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
    from nulltta.bench.variants import variants_main

    return variants_main(
        __doc__,
        OPTIONS,
        name="speed_options",
        title="ShapesBench: Null-TTA speed options",
        default_out="benchmarks/results/speed_options",
        default_prompts=6,
    )


if __name__ == "__main__":
    sys.exit(main())
