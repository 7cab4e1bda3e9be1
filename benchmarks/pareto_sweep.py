"""A weighted two-reward Pareto sweep on ShapesBench 2, as the paper's multi-objective figure.

    python benchmarks/pareto_sweep.py --out benchmarks/results/pareto_sweep [--shard 0/2]

Null-TTA (the model's defaults) with the target
``w * shapes-preference + (1 - w) * shapes-fidelity`` for w in {0, 0.25, 0.5,
0.75, 1}: the preference proxy against prompt fidelity (the classifier's
probability of the prompt's attributes, a CLIPScore analogue). Each w is a
resumable ``nulltta bench`` run in ``<out>/w=<w>``; the preference, fidelity,
held-out and gold rewards of every image are recorded as held-out scores.
``--plot-only`` redraws ``pareto.png`` and rewrites ``pareto.md`` and
``pareto.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SCORES = ("shapes-preference", "shapes-fidelity", "shapes-preference-heldout", "shapes-gold")


def target(weight: float) -> str:
    """The weighted reward's name for ``nulltta bench --target``."""
    return f"shapes-preference:{weight},shapes-fidelity:{1 - weight}"


def run(out: Path, weight: float, prompts: int, seeds: list[int], steps: int, shard: str) -> int:
    """One w: Null-TTA and plain sampling on the same pairs."""
    from nulltta.bench.shapesbench import GUIDANCE_SCALE, shapesbench_prompts
    from nulltta.cli import main as nulltta_main

    folder = out / f"w={weight}"
    folder.mkdir(parents=True, exist_ok=True)
    prompt_file = folder / "prompts.txt"
    prompt_file.write_text("\n".join(shapesbench_prompts(prompts)) + "\n")
    return nulltta_main(
        ["bench", "--model", "embedded", "--target", target(weight), "--heldout", *SCORES]
        + ["--methods", "plain", "nulltta", "--prompts", str(prompt_file)]
        + ["--seeds", *map(str, seeds), "--steps", str(steps)]
        + ["--guidance-scale", str(GUIDANCE_SCALE), "--threads", "1", "--quiet"]
        + ["--title", f"ShapesBench 2 Pareto sweep, w = {weight}", "--out", str(folder)]
        + ["--shard", shard]
    )


def summarise(out: Path) -> dict[str, dict]:
    """Per w and method, the mean ± standard error of every score and of fidelity accuracy."""
    from nulltta.bench.runner import load_rows

    summary: dict[str, dict] = {}
    for weight in WEIGHTS:
        rows = load_rows(out / f"w={weight}")
        for method in ("plain", "nulltta"):
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            entry = {"w": weight, "method": method, "images": len(mine)}
            for key in (*SCORES, "fidelity"):
                values = [r["fidelity"] if key == "fidelity" else r["heldout"][key] for r in mine]
                se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
                entry[key] = {"mean": statistics.fmean(values), "se": se}
            summary[f"{method} w={weight}"] = entry
    return summary


def markdown(summary: dict[str, dict]) -> str:
    """The sweep as a table."""
    head = "| w | method | images | preference | fidelity prob. | fidelity | held-out | gold |"
    lines = ["# ShapesBench 2: weighted two-reward sweep (Null-TTA)", "",
             "Target: `w * shapes-preference + (1 - w) * shapes-fidelity`. Mean ± standard "
             "error over (prompt, seed) pairs; plain sampling does not depend on w.", "",
             head, "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for entry in summary.values():
        cells = [f"{entry[k]['mean']:.3f} ± {entry[k]['se']:.3f}" for k in
                 ("shapes-preference", "shapes-fidelity", "fidelity",
                  "shapes-preference-heldout", "shapes-gold")]  # fmt: skip
        lines.append(f"| {entry['w']} | {entry['method']} | {entry['images']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict], path: Path) -> None:
    """Preference against fidelity probability (the front) and gold against w."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (front, gold) = plt.subplots(1, 2, figsize=(10, 4))
    aligned = [e for e in summary.values() if e["method"] == "nulltta"]
    plain = [e for e in summary.values() if e["method"] == "plain"]
    front.errorbar([e["shapes-fidelity"]["mean"] for e in aligned],
                   [e["shapes-preference"]["mean"] for e in aligned],
                   xerr=[e["shapes-fidelity"]["se"] for e in aligned],
                   yerr=[e["shapes-preference"]["se"] for e in aligned], marker="o", capsize=2,
                   label="Null-TTA")  # fmt: skip
    for e in aligned:
        front.annotate(f"w={e['w']}", (e["shapes-fidelity"]["mean"],
                                       e["shapes-preference"]["mean"]), fontsize=7)  # fmt: skip
    if plain:
        front.scatter([plain[0]["shapes-fidelity"]["mean"]],
                      [plain[0]["shapes-preference"]["mean"]], color="gray", label="plain")
    front.set_xlabel("shapes-fidelity (probability of the prompt's attributes)")
    front.set_ylabel("shapes-preference (proxy)")
    front.legend(fontsize=8)
    gold.errorbar([e["w"] for e in aligned], [e["shapes-gold"]["mean"] for e in aligned],
                  yerr=[e["shapes-gold"]["se"] for e in aligned], marker="o", capsize=2,
                  label="Null-TTA")  # fmt: skip
    if plain:
        gold.axhline(plain[0]["shapes-gold"]["mean"], color="gray", linestyle="--", label="plain")
    gold.set_xlabel("w (weight of the preference)")
    gold.set_ylabel("gold (shapes-gold)")
    gold.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Run every w (resumable), then tabulate and plot."""
    from nulltta.bench.variants import shapesbench_run_parser

    parser = shapesbench_run_parser(
        __doc__, "benchmarks/results/pareto_sweep", default_seeds=(0, 1)
    )
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.plot_only:
        for weight in WEIGHTS:
            status = run(args.out, weight, args.prompts, args.seeds, args.steps, args.shard)
            if status:
                return status
    summary = summarise(args.out)
    (args.out / "pareto.json").write_text(json.dumps(summary, indent=1))
    (args.out / "pareto.md").write_text(markdown(summary))
    plot(summary, args.out / "pareto.png")
    print((args.out / "pareto.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
