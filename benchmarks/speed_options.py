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
import statistics
import sys
from pathlib import Path

OPTIONS = {
    "nulltta": "paper schedule, no options (baseline)",
    "nulltta:gradient_checkpointing=true": "UNet + VAE gradient checkpointing",
    "nulltta:autocast_dtype=bfloat16": "bf16 autocast (UNet, VAE; fp32 reward)",
    "nulltta:decode_scale=0.5": "reward gradient through a half-resolution decode",
    "nulltta:early_stop_patience=3": "early stop after 3 inner steps without improvement",
    "nulltta:optimize_every=2": "optimise every other timestep (half the inner steps)",
    "nulltta:n_max=12": "n_max 12 instead of 25 (about half the inner steps)",
    "nulltta-fast": "fast settings: optimize_every=2, learning_rate=0.02",
    "plain": "plain CFG sampling (reference)",
}


def table(rows: list[dict], options: dict[str, str]) -> str:
    """Markdown: each option against the baseline, over the pairs both have."""
    base = {(r["prompt"], r["seed"]): r for r in rows if r["method"] == "nulltta"}
    plain = {(r["prompt"], r["seed"]): r for r in rows if r["method"] == "plain"}
    heldout = list(rows[0]["heldout"])
    header = ["option", "pairs", "time x", "vs plain x", "peak mem x", "inner steps x"]
    header += ["Δ target", *[f"Δ {h}" for h in heldout], "Δ fidelity", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, text in options.items():
        mine = [r for r in rows if r["method"] == label and (r["prompt"], r["seed"]) in base]
        if not mine:
            continue
        pairs = [(r, base[(r["prompt"], r["seed"])]) for r in mine]
        seconds = statistics.fmean(r["seconds"] for r, _ in pairs)
        ratio = seconds / statistics.fmean(b["seconds"] for _, b in pairs)
        plain_seconds = [
            plain[(r["prompt"], r["seed"])]["seconds"]
            for r, _ in pairs
            if (r["prompt"], r["seed"]) in plain
        ]
        vs_plain = seconds / statistics.fmean(plain_seconds) if plain_seconds else float("nan")
        memory = statistics.median(r["peak_memory_delta_mb"] for r, _ in pairs)
        memory /= max(1e-9, statistics.median(b["peak_memory_delta_mb"] for _, b in pairs))
        steps = [r["info"].get("inner_steps", 0) for r, _ in pairs]
        inner = statistics.fmean(steps) / statistics.fmean(
            b["info"]["inner_steps"] for _, b in pairs
        )

        def delta(get, pairs=pairs):
            return statistics.fmean(get(r) - get(b) for r, b in pairs)

        cells = [f"`{label}`: {text}", str(len(pairs)), f"{ratio:.2f}", f"{vs_plain:.1f}"]
        cells += [f"{memory:.2f}", f"{inner:.2f}", f"{delta(lambda x: x['target']):+.4f}"]
        cells += [f"{delta(lambda x, h=h: x['heldout'][h]):+.4f}" for h in heldout]
        cells += [f"{delta(lambda x: x['fidelity']):+.3f}"]
        cells += [f"{statistics.fmean(r['target'] for r, _ in pairs):.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
    from nulltta.bench.shapesbench import GUIDANCE_SCALE, shapesbench_prompts
    from nulltta.cli import main as nulltta_main

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        prompts = out / "prompts.txt"
        prompts.write_text("\n".join(shapesbench_prompts(args.prompts)) + "\n")
        status = nulltta_main(
            ["bench", "--model", "embedded", "--methods", *args.options]
            + ["--prompts", str(prompts), "--seeds", *map(str, args.seeds)]
            + ["--steps", str(args.steps), "--guidance-scale", str(GUIDANCE_SCALE)]
            + ["--title", "ShapesBench: Null-TTA speed options", "--out", str(out)]
            + ["--threads", "1", "--shard", args.shard]
        )
        if status:
            return status
    rows = load_rows(out)
    text = (
        f"# Speed options on ShapesBench\n\n{len({(r['prompt'], r['seed']) for r in rows})} "
        f"(prompt, seed) pairs, {args.steps} steps, CFG {GUIDANCE_SCALE}. Ratios and "
        "differences are against `nulltta` (paper schedule, no options) on the same pairs; "
        "time and memory as in the main table (peak memory: median over images).\n\n"
        + table(rows, {k: v for k, v in OPTIONS.items() if k in args.options})
    )
    (out / "speed_options.md").write_text(text)
    (out / "speed_options.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
