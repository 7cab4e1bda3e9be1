"""Over-optimisation curves on ShapesBench 2: target and gold reward against budget.

    python benchmarks/overoptimisation.py --out benchmarks/results/overoptimisation [--shard 0/2]

Reward hacking shows here: the proxy (target) rises while the gold reward
falls. Budgets: n_max for Null-TTA (the model's defaults and version 1's,
lambda2 0.002 at lr 0.01, the release's settings, and phi' on the text
manifold with both defaults), iterations for DNO with and without its
regulariser, N for best-of-N and particles for DAS; each is also placed on a
common axis, UNet passes per image (forward + backward, counted). The first 8
ShapesBench prompts x seeds 0 and 1 by default, 20 steps, CFG 5, through the
resumable benchmark runner; ``--plot-only`` redraws ``curves.png`` and
rewrites ``curves.md`` and ``curves.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

#: family -> (spec template, budgets, budget name)
N_MAX = (5, 12, 25, 55)
#: The defaults of version 1 of the defaults rule, and lambda2 0.002 in the release's order.
V1 = ":kl_weight=0.02:learning_rate=0.01:inner_steps_order=ramp_up"
LAMBDA2_0002 = ":kl_weight=0.002:learning_rate=0.01:inner_steps_order=ramp_up"
FAMILIES = {
    "Null-TTA (defaults)": ("nulltta:n_max={}", N_MAX, "n_max"),
    "Null-TTA (defaults v1: lambda2 0.02, lr 0.01)": ("nulltta:n_max={}" + V1, N_MAX, "n_max"),
    "Null-TTA (lambda2 0.002, lr 0.01)": ("nulltta:n_max={}" + LAMBDA2_0002, N_MAX, "n_max"),
    "Null-TTA (release KL, lr)": ("nulltta-release:n_max={}", N_MAX, "n_max"),
    "Null-TTA (text manifold)": ("nulltta-manifold:n_max={}", N_MAX, "n_max"),
    "Null-TTA (text manifold, defaults v1)": ("nulltta-manifold:n_max={}" + V1, N_MAX, "n_max"),
    "DNO": ("dno:iterations={}:learning_rate=0.05", (2, 5, 10, 20), "iterations"),
    "DNO without regulariser": (
        "dno-noreg:iterations={}:learning_rate=0.05", (2, 5, 10, 20), "iterations",
    ),
    "best-of-N": ("best-of-n:n={}", (2, 4, 8, 16, 32), "N"),
    "DAS": ("das:num_particles={}:kl_coeff=0.003", (2, 4, 8, 16), "particles"),
}  # fmt: skip
REFERENCES = ("plain", "greedy")


def specs() -> list[str]:
    """Every method spec the curves need, references first."""
    out = list(REFERENCES)
    for template, budgets, _ in FAMILIES.values():
        out += [template.format(b) for b in budgets]
    return out


def curves(rows: list[dict]) -> dict[str, list[dict]]:
    """Per family, one point per budget: mean target, gold, fidelity and UNet passes."""

    def mean(values: list[float]) -> dict[str, float]:
        se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
        return {"mean": statistics.fmean(values), "se": se}

    result: dict[str, list[dict]] = {}
    for family, (template, budgets, name) in {
        **FAMILIES, **{ref: (ref, (None,), "") for ref in REFERENCES},
    }.items():  # fmt: skip
        points = []
        for budget in budgets:
            label = template.format(budget) if budget is not None else template
            mine = [r for r in rows if r["method"] == label]
            if not mine:
                continue
            points.append({
                "budget": budget, "budget_name": name, "label": label, "images": len(mine),
                "target": mean([r["target"] for r in mine]),
                "gold": mean([r["heldout"]["shapes-gold"] for r in mine]),
                "heldout": mean([r["heldout"]["shapes-preference-heldout"] for r in mine]),
                "fidelity": mean([r["fidelity"] for r in mine]),
                "unet_passes": statistics.fmean(r["unet_forward"] + r["unet_backward"]
                                                for r in mine),
            })  # fmt: skip
        result[family] = points
    return result


def markdown(result: dict[str, list[dict]]) -> str:
    """One table row per (family, budget)."""
    lines = [
        "# ShapesBench 2: over-optimisation curves",
        "",
        "Mean ± standard error over (prompt, seed) pairs. Reward hacking: target up, gold down.",
        "",
        "| method | budget | images | UNet passes | target | held-out | gold | fidelity |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family, points in result.items():
        for p in points:
            budget = "" if p["budget"] is None else f"{p['budget_name']} = {p['budget']}"
            cells = [f"{p[k]['mean']:.3f} ± {p[k]['se']:.3f}" for k in
                     ("target", "heldout", "gold", "fidelity")]  # fmt: skip
            lines.append(f"| {family} | {budget} | {p['images']} | {p['unet_passes']:.0f} | "
                         + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(result: dict[str, list[dict]], path: Path) -> None:
    """Target and gold against UNet passes, one line per family, references as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for family, points in result.items():
        if family in REFERENCES or not points:
            continue
        xs = [p["unet_passes"] for p in points]
        for ax, key in zip(axes, ("target", "gold", "fidelity"), strict=True):
            ax.errorbar(xs, [p[key]["mean"] for p in points],
                        yerr=[p[key]["se"] for p in points], marker="o", capsize=2,
                        label=family)  # fmt: skip
            for p in points:
                ax.annotate(str(p["budget"]), (p["unet_passes"], p[key]["mean"]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3))  # fmt: skip
    for ax, key, title in zip(axes, ("target", "gold", "fidelity"),
                              ("target (shapes-preference, the proxy)", "gold (shapes-gold)",
                               "prompt fidelity"), strict=True):  # fmt: skip
        for reference, style in zip(REFERENCES, ("--", ":"), strict=True):
            if result.get(reference):
                ax.axhline(result[reference][0][key]["mean"], color="gray", linestyle=style,
                           label=reference)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("UNet passes per image (forward + backward; labels: the budget)")
        ax.set_title(title, fontsize=10)
    axes[2].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Run the budgets (resumable), then tabulate and plot."""
    from nulltta.bench.variants import shapesbench_run_parser

    parser = shapesbench_run_parser(
        __doc__, "benchmarks/results/overoptimisation", default_seeds=(0, 1)
    )
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args(argv)
    from nulltta.bench.runner import load_rows
    from nulltta.bench.variants import run_shapesbench_variants

    if not args.plot_only:
        status = run_shapesbench_variants(
            args.out, specs(), args.prompts, args.seeds, args.steps,
            "ShapesBench 2: over-optimisation budgets", args.shard,
        )  # fmt: skip
        if status:
            return status
    result = curves(load_rows(args.out))
    (args.out / "curves.json").write_text(json.dumps(result, indent=1))
    (args.out / "curves.md").write_text(markdown(result))
    plot(result, args.out / "curves.png")
    print((args.out / "curves.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
