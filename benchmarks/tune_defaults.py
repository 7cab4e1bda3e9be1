"""Choose the embedded model's lambda2, annealing and step size from curves (ShapesBench 2).

    python benchmarks/tune_defaults.py --out benchmarks/results/defaults [--shard 0/2]

The rule (``docs/concepts/shapesbench.md``): among the settings whose prompt
fidelity is within 2 points of plain sampling's, the one with the best mean
gold reward. Tuning pairs: the 16 ShapesBench prompts x seeds 100 and 101,
never the main table's seeds. Sampler and budget as in the main table (20
steps, CFG 5, the release's schedule compressed to 20 steps, K = 3). Each
setting is one batched fit over all pairs (a batch equals single runs).

Resumable: every finished setting is a block of rows in ``rows.jsonl``;
``--shard i/n`` runs every n-th setting, for n processes; ``--report-only``
rewrites ``defaults.md``, ``defaults.json`` and ``curves.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

PLAIN = "plain"
GREEDY = "greedy"
KL_WEIGHTS = (0.002, 0.02, 0.2, 2.0)
LEARNING_RATES = (0.01, 0.03)
MANIFOLD_KL_WEIGHTS = (0.02, 0.2)
#: The inner-step order experiment (docs/concepts/shapesbench.md, "Follow-up").
RAMP_DOWN_KL_WEIGHTS = (0.002, 0.02)
#: Version 3 of the defaults rule: the text manifold at the free phi's best settings.
MANIFOLD_RAMP_DOWN_KL_WEIGHTS = (0.002, 0.02)
#: Pinned, so that a label means the same settings whatever the model's default order.
RELEASE_ORDER = "ramp_up"


def constant(kl: float, lr: float, order: str, manifold: bool = False) -> dict:
    """Settings with lambda2 held constant, in the given inner-step order."""
    settings = {"kl_weight": kl, "anneal_kl": False, "learning_rate": lr}
    if manifold:
        settings["null_parameterisation"] = "text_manifold"
    return {**settings, "inner_steps_order": order}


def settings_grid() -> dict[str, dict]:
    """Label -> NullTextAligner settings (plus plain sampling and greedy selection alone)."""
    grid: dict[str, dict] = {
        PLAIN: {"n_min": 0, "n_max": 0, "num_candidates": 1, "select_initial_noise": False},
        GREEDY: {"n_min": 0, "n_max": 0},
    }
    for lr in LEARNING_RATES:
        grid[f"kl=0 lr={lr}"] = constant(0.0, lr, RELEASE_ORDER)
    for kl, anneal, lr in itertools.product(KL_WEIGHTS, (True, False), LEARNING_RATES):
        label = f"kl={kl} {'annealed' if anneal else 'constant'} lr={lr}"
        grid[label] = {**constant(kl, lr, RELEASE_ORDER), "anneal_kl": anneal}
    for kl, lr in itertools.product(RAMP_DOWN_KL_WEIGHTS, LEARNING_RATES):
        grid[f"kl={kl} constant lr={lr} ramp_down"] = constant(kl, lr, "ramp_down")
    for kl, lr in itertools.product(MANIFOLD_KL_WEIGHTS, LEARNING_RATES):
        grid[f"manifold kl={kl} constant lr={lr}"] = constant(kl, lr, RELEASE_ORDER, manifold=True)
    for kl, lr in itertools.product(MANIFOLD_RAMP_DOWN_KL_WEIGHTS, LEARNING_RATES):
        grid[f"manifold kl={kl} constant lr={lr} ramp_down"] = constant(
            kl, lr, "ramp_down", manifold=True
        )
    return grid


def run_setting(pipe, label: str, settings: dict, pairs, scorers, batch_size: int) -> list[dict]:
    """Fit every pair with one setting; one row per image."""
    from nulltta import NullTextAligner
    from nulltta.bench.base import compressed_rate
    from nulltta.bench.scoring import score_images
    from nulltta.images import to_tensor

    aligner = NullTextAligner(
        pipe, "shapes-preference", num_inference_steps=20, schedule_rate=compressed_rate(20),
        batch_size=batch_size, autocast_dtype=None, vae_autocast_dtype=None, **settings,
    )  # fmt: skip
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    started = time.perf_counter()
    aligner.fit(prompts, seeds=seeds)
    seconds = (time.perf_counter() - started) / len(pairs)
    images = torch.cat([to_tensor(image) for image in aligner.images_])
    scores = score_images(images, prompts, scorers)
    terms = gold_terms(images, prompts)
    rows = []
    for (prompt, seed), score, history, term in zip(
        pairs, scores, aligner.histories_, terms, strict=True
    ):
        rows.append({
            "setting": label, "prompt": prompt, "seed": seed, **score, **term,
            "seconds": seconds, "phi_distance": history[-1]["phi_distance"],
            "inner_steps": sum(history[:, "inner_steps"]),
        })  # fmt: skip
    return rows


def gold_terms(images: torch.Tensor, prompts: list[str]) -> list[dict[str, float]]:
    """Per image, the gold reward's parts: its prompt gate, size term and centring term."""
    from nulltta.shapes.gold import centring, gate, measure, size_term

    with torch.no_grad():
        geometry = measure(images, prompts)
        gates = gate(images, prompts, geometry.area)
        sizes = size_term(geometry.size)
        centrings = centring(geometry.cx, geometry.cy)
    return [
        {"gate": float(g), "size_term": float(s), "centring": float(c)}
        for g, s, c in zip(gates, sizes, centrings, strict=True)
    ]


def summarise(rows: list[dict]) -> dict[str, dict]:
    """Per setting: mean (and standard error over pairs) of every score, and the rule."""
    summary: dict[str, dict] = {}
    for label in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == label]
        entry = {"pairs": len(mine)}
        for key in ("target", "shapes-preference-heldout", "shapes-gold", "fidelity",
                    "phi_distance", "seconds"):  # fmt: skip
            values = [r[key] for r in mine]
            mean = statistics.fmean(values)
            se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
            entry[key] = {"mean": mean, "se": se}
        summary[label] = entry
    plain = summary[PLAIN]["fidelity"]["mean"]
    for entry in summary.values():
        entry["fidelity_ok"] = entry["fidelity"]["mean"] >= plain - 0.02
    eligible = [k for k, v in summary.items() if v["fidelity_ok"] and k not in (PLAIN, GREEDY)]
    best = max(eligible, key=lambda k: summary[k]["shapes-gold"]["mean"]) if eligible else None
    for label, entry in summary.items():
        entry["chosen"] = label == best
    return summary


def markdown(summary: dict[str, dict], grid: dict[str, dict], seeds: list[int]) -> str:
    """The table, with the rule and its choice; ``seeds`` are the tuning seeds the rows hold."""
    plain = summary[PLAIN]["fidelity"]["mean"]
    chosen = [k for k, v in summary.items() if v["chosen"]]
    lines = [
        "# ShapesBench 2: choosing the embedded model's defaults",
        "",
        f"{summary[PLAIN]['pairs']} tuning pairs (prompts x seeds {', '.join(map(str, seeds))}), "
        "20 steps, CFG 5, "
        "K = 3. Rule: the best mean gold among the settings whose fidelity is within 2 points "
        f"of plain sampling's ({plain:.3f}). Chosen: **{chosen[0] if chosen else 'none'}**.",
        "Mean ± standard error over pairs.",
        "",
        "| setting | target | held-out | gold | fidelity | within 2 pts | phi' distance | s/img |",
        "|---|---|---|---|---|---|---|---|",
    ]
    def cell(entry: dict, key: str, digits: int = 3) -> str:
        return f"{entry[key]['mean']:.{digits}f} ± {entry[key]['se']:.{digits}f}"

    for label, entry in summary.items():
        name = f"**{label}**" if entry["chosen"] else label
        lines.append(
            f"| {name} | {cell(entry, 'target')} | {cell(entry, 'shapes-preference-heldout')} | "
            f"{cell(entry, 'shapes-gold')} | {cell(entry, 'fidelity', 2)} | "
            f"{'yes' if entry['fidelity_ok'] else 'no'} | {entry['phi_distance']['mean']:.2f} | "
            f"{entry['seconds']['mean']:.1f} |"
        )
    lines += ["", "Settings:", ""]
    ran = {label: settings for label, settings in grid.items() if label in summary}
    lines += [f"- `{label}`: `{json.dumps(settings)}`" for label, settings in ran.items()]
    skipped = [label for label in grid if label not in summary]
    if skipped:
        lines += ["", "Not run (`--settings` chose the others): " + ", ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, dict], path: Path) -> None:
    """Target, gold and fidelity against lambda2, one line per (annealing, lr, parameterisation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (target_axes, gold_axes, fidelity_axes) = plt.subplots(1, 3, figsize=(15, 4))
    families: dict[str, list[tuple[float, dict]]] = {}
    for label, entry in summary.items():
        if label in (PLAIN, GREEDY):
            continue
        parts = label.split()
        kl = float(next(p for p in parts if p.startswith("kl=")).split("=")[1])
        family = " ".join(p for p in parts if not p.startswith("kl="))
        families.setdefault(family, []).append((kl if kl > 0 else 1e-4, entry))
    for family, points in sorted(families.items()):
        points.sort(key=lambda item: item[0])
        xs = [x for x, _ in points]
        for axes, key in (
            (target_axes, "target"), (gold_axes, "shapes-gold"), (fidelity_axes, "fidelity")
        ):  # fmt: skip
            axes.errorbar(
                xs, [e[key]["mean"] for _, e in points], yerr=[e[key]["se"] for _, e in points],
                marker="o", capsize=2, label=family,
            )  # fmt: skip
    for axes, key, title in (
        (target_axes, "target", "target (shapes-preference)"),
        (gold_axes, "shapes-gold", "gold (never optimised)"),
        (fidelity_axes, "fidelity", "prompt fidelity"),
    ):
        for reference, style in ((PLAIN, "--"), (GREEDY, ":")):
            axes.axhline(summary[reference][key]["mean"], linestyle=style, color="gray",
                         label=f"{reference} sampling" if reference == PLAIN else "greedy alone")
        axes.set_xscale("log")
        axes.set_xlabel("lambda2 (kl_weight; 1e-4 stands for 0)")
        axes.set_title(title)
    fidelity_axes.axhline(summary[PLAIN]["fidelity"]["mean"] - 0.02, color="red", linewidth=0.8,
                          label="plain - 2 points")  # fmt: skip
    fidelity_axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    """Run the grid (resumable), then write the table and the curves."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/defaults"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard", default="0/1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--model", type=Path, default=None,
        help="a retrained model of the world (train_model folder; default: the shipped model)",
    )  # fmt: skip
    parser.add_argument(
        "--settings", nargs="+", default=None, metavar="LABEL",
        help="run only these settings of the grid (plain sampling always runs)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from nulltta.jsonl import append_row, read_rows

    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    grid = settings_grid()
    to_run = grid
    if args.settings:
        unknown = sorted(set(args.settings) - set(grid))
        if unknown:
            parser.error(f"unknown settings {unknown}; the grid has: {', '.join(grid)}")
        to_run = {k: v for k, v in grid.items() if k == PLAIN or k in args.settings}
    if not args.report_only:
        from nulltta.bench.scoring import evaluation_scorers
        from nulltta.bench.shapesbench import shapesbench_prompts
        from nulltta.profiles import model_profile
        from nulltta.shapes.model import load_embedded_pipeline, load_world_model

        torch.set_num_threads(args.threads)
        torch.set_flush_denormal(True)
        index, count = map(int, args.shard.split("/"))
        pipe = load_embedded_pipeline() if args.model is None else load_world_model(args.model)
        scorers = evaluation_scorers(model_profile("embedded"))
        pairs = [(p, s) for p in shapesbench_prompts(args.prompts) for s in args.seeds]
        done = {r["setting"] for r in read_rows(rows_path)}
        for number, (label, settings) in enumerate(to_run.items()):
            if number % count != index or label in done:
                continue
            started = time.perf_counter()
            for row in run_setting(pipe, label, settings, pairs, scorers, args.batch_size):
                append_row(rows_path, row)
            print(f"{label}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = read_rows(rows_path)
    # The report covers every setting of the grid that has run, not only to_run.
    settled = {label for label in grid if sum(r["setting"] == label for r in rows) > 0}
    if PLAIN not in settled:
        print("plain sampling has not run yet: no report")
        return 0
    summary = summarise([r for r in rows if r["setting"] in settled])
    (args.out / "defaults.json").write_text(json.dumps(summary, indent=1))
    seeds = sorted({r["seed"] for r in rows})
    (args.out / "defaults.md").write_text(markdown(summary, grid, seeds))
    plot(summary, args.out / "curves.png")
    print((args.out / "defaults.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
