"""Prompt fidelity against target reward for Null-TTA's KL settings, on ShapesBench.

    python benchmarks/regularisation.py --out benchmarks/results/regularisation

Written for ShapesBench 1, whose hidden preference included shape-background
colour contrast, so that a reward-only optimiser could raise it by changing
the colours the prompt asked for (``docs/concepts/regularisation.md``; its
results are in the git history at ``f848eb5``). ShapesBench 2's gold has no
such term; its KL settings are chosen by the defaults rule
(``benchmarks/tune_defaults.py``). This script runs Null-TTA with the
release's KL settings (the baseline) and with stronger or un-annealed KL on
the same (prompt, seed) pairs, through the benchmark runner (resumable), and
prints per setting the change of target, held-out rewards and fidelity
against the baseline, with plain sampling as the reference.
"""

from __future__ import annotations

import sys

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
    from nulltta.bench.variants import variants_main

    return variants_main(
        __doc__,
        SETTINGS,
        name="regularisation",
        title="ShapesBench: Null-TTA KL settings",
        default_out="benchmarks/results/regularisation",
        default_prompts=8,
    )


if __name__ == "__main__":
    sys.exit(main())
