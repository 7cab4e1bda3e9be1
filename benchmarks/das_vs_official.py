"""nulltta's DAS beside the authors' DAS sampler: same pipeline, prompts, seeds and reward.

    nice -n 19 .venv/bin/python benchmarks/das_vs_official.py

Runs, interleaved in one process for every (prompt, seed) pair:

- ``ours``: :class:`nulltta.bench.das.DAS` as it is configured by default
  (after resampling, twist and reward gradient stay in their slots, as in
  the authors' code);
- ``ours-carry-twists``: the same with ``carry_twists=True``, the textbook SMC
  bookkeeping (twist and gradient move with their particle);
- ``official``: ``pipeline_using_smc`` imported from ``--anchor`` (default
  ``../shared/anchors/das``, never copied into the project) with the authors'
  SD settings (SSP resampling at ESS < N/2, exponential tempering schedule,
  DDIM eta = 1) and the tempering rate compressed to T steps, as ours.

Every image is scored by the target reward, the held-out reward and prompt
fidelity (embedded model), rounded to 8 bits first as the benchmark runner
does. Before the pairs, parity checks: SSP resampling against the authors'
numba SSP on the same uniforms, and the two samplers with resampling switched
off (identical noise draws), at a mild alpha and at the benchmark's, next to
the authors' sampler against itself with another particle batching (which
changes only float rounding).

The model, rewards and CFG are read when the script runs (``--model
embedded`` loads :func:`nulltta.shapes.model.load_embedded_pipeline`;
``--target``/``--heldout`` are reward names), so it reruns unchanged on a new
embedded model. Results: ``rows.jsonl`` and ``parity.json`` (both resumable),
``results.json`` and ``results.md`` under ``--out``; ``--report-only`` writes
the report from the rows so far.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from das_official import (
    REPO,
    Official,
    assets_fingerprint,
    default_guidance_scale,
    load_pipeline,
    model_description,
    run_ours,
    ssp_parity,
    trajectory_parity,
)

DEFAULT_ANCHOR = "../shared/anchors/das"
DEFAULT_OUT = "benchmarks/results/das_vs_official"
ARMS = ("ours", "ours-carry-twists", "official")
METRICS = ("target", "heldout", "fidelity", "seconds")


# --- the comparison -------------------------------------------------------------


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (sample standard deviation / sqrt(n))."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()), float("nan")
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


def summarize(rows: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per-arm means +- SE and paired differences over the pairs every arm finished."""
    by_arm = {arm: {(r["prompt"], r["seed"]): r for r in rows if r["arm"] == arm} for arm in arms}
    pairs = sorted(set.intersection(*(set(v) for v in by_arm.values())))
    summary: dict[str, Any] = {"pairs": len(pairs), "arms": {}, "paired": {}}
    for arm in arms:
        entry = {}
        for metric in (*METRICS, "resamplings"):
            values = [by_arm[arm][p][metric] for p in pairs]
            entry[metric] = mean_se(values) if None not in values else (math.nan, math.nan)
        summary["arms"][arm] = entry
    comparisons = [("ours", "official"), ("ours-carry-twists", "official")]
    comparisons.append(("ours-carry-twists", "ours"))
    for a, b in [(a, b) for a, b in comparisons if a in arms and b in arms]:
        key = f"{a} - {b}"
        summary["paired"][key] = {}
        for metric in METRICS[:3]:
            if any(by_arm[a][p][metric] is None for p in pairs):
                continue
            differences = [by_arm[a][p][metric] - by_arm[b][p][metric] for p in pairs]
            mean, se = mean_se(differences)
            summary["paired"][key][metric] = {
                "mean": mean,
                "se": se,
                "z": mean / se if se and se > 0 else float("nan"),
                "a_higher": sum(d > 0 for d in differences),
                "b_higher": sum(d < 0 for d in differences),
            }
    return summary


def markdown(results: dict[str, Any]) -> str:
    """The results as a Markdown page."""
    s = results["settings"]
    summary = results["summary"]
    lines = [
        "# DAS: nulltta against the authors' sampler",
        "",
        "Model: " + ", ".join(f"{k} `{v}`" for k, v in results["model"].items()) + "; "
        f"assets fingerprint `{s.get('model_fingerprint')}`.",
        f"Target `{s['target']}`, held-out `{s['heldout']}`, fidelity: ShapesBench classifier "
        "(all three attributes). Images rounded to 8 bits before scoring.",
        f"{s['particles']} particles, alpha (kl_coeff) {s['kl_coeff']}, {s['steps']} DDIM steps "
        f"(eta 1), CFG {s['guidance_scale']}, tempering rate {s['tempering_rate']:.4f} "
        "(the authors' 0.008 over 100 steps compressed to T), SSP resampling at ESS < N/2. "
        f"{summary['pairs']} (prompt, seed) pairs finished by every arm (of {s['prompts']} "
        f"prompts x seeds {s['seeds']}), arms interleaved in one process (order rotated per pair), "
        f"{s['threads']} thread(s).",
        "",
        "| arm | target | held-out | fidelity | resamplings | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for arm, entry in summary["arms"].items():
        cells = [f"{entry[m][0]:.4f} ± {entry[m][1]:.4f}" for m in METRICS[:3]]
        cells.append(f"{entry['resamplings'][0]:.1f}")
        cells.append(f"{entry['seconds'][0]:.1f} ± {entry['seconds'][1]:.1f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Means ± standard errors. Seconds: wall-clock on a shared CPU, compare loosely.",
        "",
        "## Paired differences (a - b, same prompt and seed)",
        "",
        "| a - b | target | held-out | fidelity |",
        "|---|---|---|---|",
    ]
    for key, entry in summary["paired"].items():
        cells = [
            f"{entry[m]['mean']:+.4f} ± {entry[m]['se']:.4f} (z {entry[m]['z']:+.2f}; "
            f"{entry[m]['a_higher']}/{entry[m]['b_higher']})"
            if m in entry
            else "n/a"
            for m in METRICS[:3]
        ]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± SE of the per-pair difference, z = mean / SE, and how many pairs a / b "
        "scored higher (ties not counted).",
        "",
        "## Parity checks",
        "",
        f"SSP resampling, ours against the authors' numba SSP on the same uniforms: "
        f"{results['parity']['ssp']['mismatches']} mismatches in "
        f"{results['parity']['ssp']['trials']} weight vectors.",
        "",
        "Resampling off (ESS threshold 0), same seed, hence the same noise draws. "
        "`official/batch 1`: the authors' sampler against itself with one particle per UNet "
        "call instead of all at once, which changes float rounding only.",
        "",
        "| prompt | seed | alpha | ours vs official: max abs pixel | weights | same particle "
        "| official/batch 1 vs official: max abs pixel | same particle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["parity"]["trajectories"]:
        lines.append(
            f"| {row['prompt']} | {row['seed']} | {row['kl_coeff']} "
            f"| {row['ours_vs_official_image_max_abs']:.2e} "
            f"| {row['ours_vs_official_weights_max_abs']:.2e} "
            f"| {row['ours_vs_official_same_particle']} "
            f"| {row['official_batch1_vs_official_image_max_abs']:.2e} "
            f"| {row['official_batch1_vs_official_same_particle']} |"
        )
    lines += ["", "Commands that produced these rows (resumed runs append to them):", ""]
    if "run_from" in results:
        lines += [f"Run from {results['run_from']}.", ""]
    lines += [f"- `{command}`" for command in results["commands"]]
    lines.append("")
    return "\n".join(lines)


def evaluate(image: torch.Tensor, prompt: str, target: Any, heldout: Any, fidelity: Any) -> dict:
    """Target, held-out and fidelity of one image, rounded to 8 bits as the runner does."""
    from nulltta.bench.runner import quantize

    image = quantize(image[:1])
    with torch.no_grad():
        return {
            "target": float(target(image, [prompt])[0]),
            "heldout": float(heldout(image, [prompt])[0]),
            "fidelity": None if fidelity is None else float(fidelity(image, [prompt])[0]),
        }


def report_only(out: Path, arms: list[str]) -> int:
    """Rewrite results.json and results.md from the stored rows, without loading a model."""
    previous = out / "results.json"
    if not previous.exists():
        raise SystemExit(f"no results.json in {out}: run the benchmark first")
    results = json.loads(previous.read_text())
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    results["settings"] = json.loads((out / "settings.json").read_text())
    results["parity"]["trajectories"] = json.loads((out / "parity.json").read_text())
    results["summary"] = summarize(rows, arms)
    previous.write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--anchor", default=DEFAULT_ANCHOR, help="official DAS folder")
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--target", default="shapes-preference")
    parser.add_argument("--heldout", default="shapes-preference-heldout")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--particles", type=int, default=8)
    parser.add_argument("--kl-coeff", type=float, default=0.003)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance-scale", type=float, default=None, help="default: the model's")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--parity-seeds", type=int, default=3, help="first prompt, seeds 0..k-1")
    parser.add_argument("--parity-kl", type=float, nargs="+", default=[0.03, 0.003])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the rows so far"
    )
    parser.add_argument(
        "--parity-only", action="store_true", help="add missing parity rows, then the report"
    )
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--model-note", default=None, help="recorded with the model's description")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from nulltta.bench import compressed_rate
    from nulltta.bench.shapesbench import shapesbench_prompts
    from nulltta.rewards import get_reward

    anchor = (
        (REPO / args.anchor).resolve() if not Path(args.anchor).is_absolute() else Path(args.anchor)
    )
    out = REPO / args.out if not Path(args.out).is_absolute() else Path(args.out)
    if args.report_only:
        return report_only(out, args.arms)
    out.mkdir(parents=True, exist_ok=True)
    pipe = load_pipeline(args.model)
    official = Official(anchor, pipe)
    target, heldout = get_reward(args.target), get_reward(args.heldout)
    fidelity = None
    if args.model == "embedded":
        from nulltta.shapes.rewards import fidelity_accuracy as fidelity
    prompts = shapesbench_prompts(args.prompts)
    settings = {
        "target": args.target,
        "heldout": args.heldout,
        "prompts": args.prompts,
        "seeds": args.seeds,
        "particles": args.particles,
        "kl_coeff": args.kl_coeff,
        "steps": args.steps,
        "guidance_scale": args.guidance_scale or default_guidance_scale(),
        "tempering_rate": compressed_rate(args.steps),
        "threads": args.threads,
        "model_fingerprint": assets_fingerprint(args.model),
    }
    description = model_description(args.model, pipe)
    if args.model_note:
        description["note"] = args.model_note
    rows_file = out / "rows.jsonl"
    settings_file = out / "settings.json"
    if settings_file.exists() and json.loads(settings_file.read_text()) != settings:
        raise SystemExit(
            f"{out} holds a run with other settings or another model ({settings_file}); "
            "choose another --out, or delete its files to start over"
        )
    settings_file.write_text(json.dumps(settings, indent=1))
    rows = (
        [json.loads(line) for line in rows_file.read_text().splitlines()]
        if (rows_file.exists())
        else []
    )
    done = {(r["arm"], r["prompt"], r["seed"]) for r in rows}

    # Parity rows are kept in parity.json and only missing ones are computed.
    parity_file = out / "parity.json"
    stored = json.loads(parity_file.read_text()) if parity_file.exists() else []
    have = {(r["prompt"], r["seed"], r["kl_coeff"]) for r in stored}
    print("parity checks ...", flush=True)
    for kl in args.parity_kl:
        seeds = [s for s in range(args.parity_seeds) if (prompts[0], s, kl) not in have]
        for row in trajectory_parity(pipe, official, target, prompts[0], seeds, settings, kl):
            stored.append(row)
            parity_file.write_text(json.dumps(stored, indent=1))
    parity = {"ssp": ssp_parity(official), "trajectories": stored}
    print(json.dumps(parity, indent=1), flush=True)

    pairs = [(prompt, seed) for seed in args.seeds for prompt in prompts]
    for number, (prompt, seed) in enumerate([] if args.parity_only else pairs):
        order = args.arms[number % len(args.arms) :] + args.arms[: number % len(args.arms)]
        for arm in order:
            if (arm, prompt, seed) in done:
                continue
            start = time.perf_counter()
            if arm == "official":
                image, info = official.run(prompt, seed, target, settings)
            else:
                image, info = run_ours(
                    pipe, prompt, seed, target, settings, carry_twists=arm == "ours-carry-twists"
                )
            seconds = time.perf_counter() - start
            row = {
                "arm": arm,
                "prompt": prompt,
                "seed": seed,
                **evaluate(image, prompt, target, heldout, fidelity),
                "seconds": seconds,
                "resamplings": info["resamplings"],
            }
            rows.append(row)
            with rows_file.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"[{number + 1}/{len(pairs)}] {arm:18s} {prompt} s{seed}: target "
                f"{row['target']:.3f} heldout {row['heldout']:.3f} fidelity {row['fidelity']} "
                f"{seconds:.1f}s",
                flush=True,
            )
    previous = out / "results.json"
    commands = json.loads(previous.read_text()).get("commands", []) if previous.exists() else []
    command = shlex.join(["python", "benchmarks/das_vs_official.py", *sys.argv[1:]])
    results = {
        "model": description,
        "settings": settings,
        "parity": parity,
        "summary": summarize(rows, args.arms),
        "commands": [*commands, command],
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
