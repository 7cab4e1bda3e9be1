"""Does giving the noisiest steps the most inner steps move the shape to the centre?

    python benchmarks/tune_defaults.py --out benchmarks/results/schedule_order --shard 0/2 \
        --settings greedy "kl=0.02 constant lr=0.01" "kl=0.02 constant lr=0.01 ramp_down" ...
    python benchmarks/schedule_order.py benchmarks/results/schedule_order

The experiment written down before it ran (``docs/concepts/shapesbench.md``,
"Follow-up: inner steps at the noisiest steps"): each ``... ramp_down``
setting of ``tune_defaults``'s grid against the same setting with the
release's order (``ramp_up``), the same inner-step total, on the tuning
pairs. This script only reads that folder's ``rows.jsonl`` and writes
``schedule_order.md`` and ``schedule_order.json``: per (lambda2, lr), the
paired difference ramp_down - ramp_up of the centring term (the hypothesis's
measure), the size term, the gate, gold, the target and fidelity, and the
verdict by the stated reading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

RAMP_DOWN = " ramp_down"
#: The defaults when the experiment was written down (version 1 of the rule):
#: the comparison the verdict reads; the others are secondary.
PRIMARY = "kl=0.02 constant lr=0.01"
MEASURES = ("centring", "size_term", "gate", "shapes-gold", "target", "fidelity")


def paired_differences(rows: list[dict]) -> dict[str, dict]:
    """Per ramp_down setting with its ramp_up twin: mean and SE of each paired difference."""
    by_setting: dict[str, dict[tuple[str, int], dict]] = {}
    for row in rows:
        by_setting.setdefault(row["setting"], {})[(row["prompt"], row["seed"])] = row
    out: dict[str, dict] = {}
    for label, down in by_setting.items():
        if not label.endswith(RAMP_DOWN) or label.removesuffix(RAMP_DOWN) not in by_setting:
            continue
        up = by_setting[label.removesuffix(RAMP_DOWN)]
        pairs = sorted(set(down) & set(up))
        entry: dict[str, dict | int] = {"pairs": len(pairs)}
        for key in MEASURES:
            deltas = [down[p][key] - up[p][key] for p in pairs]
            se = statistics.stdev(deltas) / len(deltas) ** 0.5 if len(deltas) > 1 else 0.0
            entry[key] = {
                "ramp_up": statistics.fmean(up[p][key] for p in pairs),
                "ramp_down": statistics.fmean(down[p][key] for p in pairs),
                "delta": statistics.fmean(deltas),
                "se": se,
            }
        out[label.removesuffix(RAMP_DOWN)] = entry
    return out


def verdict(differences: dict[str, dict], primary: str = PRIMARY) -> str:
    """The reading stated before the run, on the primary setting's centring difference.

    Supported if ramp_down raises centring by more than 2 SE at the shipped
    defaults; refuted otherwise. The other settings are secondary and reported.
    """
    if primary not in differences:
        return f"not decided: {primary} has not run in both orders"
    centre = differences[primary]["centring"]
    delta, se = centre["delta"], centre["se"]
    moved = f"centring {delta:+.3f} ± {se:.3f} at {primary}"
    if delta > 2 * se:
        return f"supported: {moved}, more than 2 SE up"
    return f"refuted: {moved}, not more than 2 SE up"


def markdown(differences: dict[str, dict]) -> str:
    """One table per measure family: ramp_up, ramp_down and the paired difference."""
    lines = [
        "# Inner steps at the noisiest steps (ramp_down) against the release's order",
        "",
        "Tuning pairs (16 ShapesBench prompts x seeds 100, 101), 20 steps, CFG 5, K = 3, the "
        "same inner-step total in both orders. Centring, size term and gate are measured on "
        "every image (not only those the gate passes); gold = gate x (0.5 size + 0.5 "
        "centring). Paired difference ramp_down - ramp_up, mean ± SE over pairs.",
        "",
        f"**Verdict** (the reading stated before the run): {verdict(differences)}.",
        "",
        "| setting | pairs | " + " | ".join(MEASURES) + " |",
        "|---|---|" + "---|" * len(MEASURES),
    ]
    for label, entry in differences.items():
        cells = [
            f"{entry[k]['ramp_up']:.3f} -> {entry[k]['ramp_down']:.3f} "
            f"({entry[k]['delta']:+.3f} ± {entry[k]['se']:.3f})"
            for k in MEASURES
        ]
        lines.append(f"| {label} | {entry['pairs']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def inner_gains(histories: list, steps: int) -> list[dict[str, float]]:
    """Per sampling step: mean (and SE) over images of the target's rise within the step.

    The rise is the reward of x0_hat at the step's last inner step minus at its
    first (both measured before that inner step's update), so it is what the
    inner loop bought at that noise level; steps with fewer than 2 inner steps
    are left out.
    """
    out = []
    for step in range(steps):
        rises = [
            h[step]["inner"][-1]["reward"] - h[step]["inner"][0]["reward"]
            for h in histories
            if len(h[step]["inner"]) >= 2
        ]
        if rises:
            se = statistics.stdev(rises) / len(rises) ** 0.5 if len(rises) > 1 else 0.0
            count = len(histories[0][step]["inner"])
            out.append({"step": step, "inner_steps": count, "rise": statistics.fmean(rises),
                        "se": se})  # fmt: skip
    return out


def measure_inner_gains(prompts: int, seeds: list[int]) -> dict[str, list[dict[str, float]]]:
    """Fit the tuning pairs at the primary setting in both orders; the rise per step."""
    import torch

    from nulltta import NullTextAligner
    from nulltta.bench.base import compressed_rate
    from nulltta.bench.shapesbench import shapesbench_prompts
    from nulltta.shapes.model import load_embedded_pipeline

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    pipe = load_embedded_pipeline()
    pairs = [(p, s) for p in shapesbench_prompts(prompts) for s in seeds]
    out = {}
    for order in ("ramp_up", "ramp_down"):
        aligner = NullTextAligner(
            pipe, "shapes-preference", num_inference_steps=20, schedule_rate=compressed_rate(20),
            kl_weight=0.02, anneal_kl=False, learning_rate=0.01, inner_steps_order=order,
            batch_size=len(pairs), autocast_dtype=None,
            vae_autocast_dtype=None,
        ).fit([p for p, _ in pairs], seeds=[s for _, s in pairs])  # fmt: skip
        out[order] = inner_gains(aligner.histories_, 20)
    return out


def gains_markdown(gains: dict[str, list[dict[str, float]]]) -> str:
    """Both orders side by side, one row per sampling step."""
    lines = [
        "",
        "## What the inner steps buy at each noise level (lambda2 0.02, lr 0.01)",
        "",
        "Target of x0_hat at a step's last inner step minus at its first, mean ± SE over "
        "images (`--inner-gains`).",
        "",
        "| step | ramp_up inner steps | ramp_up rise | ramp_down inner steps | ramp_down rise |",
        "|---|---|---|---|---|",
    ]
    up = {g["step"]: g for g in gains["ramp_up"]}
    down = {g["step"]: g for g in gains["ramp_down"]}
    for step in sorted(set(up) | set(down)):
        cells = []
        for side in (up, down):
            g = side.get(step)
            cells += ["", ""] if g is None else [
                str(g["inner_steps"]), f"{g['rise']:+.4f} ± {g['se']:.4f}"
            ]  # fmt: skip
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the paired report for a tune_defaults folder that ran both orders."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a tune_defaults --out folder")
    parser.add_argument(
        "--inner-gains", action="store_true",
        help="also fit the tuning pairs in both orders and report the target's rise per step "
        "(inner_gains.json; later runs reuse it)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from nulltta.jsonl import read_rows

    differences = paired_differences(read_rows(args.folder / "rows.jsonl"))
    if not differences:
        parser.error(f"{args.folder}: no ramp_down setting with its ramp_up twin has run")
    gains_path = args.folder / "inner_gains.json"
    if args.inner_gains and not gains_path.exists():
        gains_path.write_text(json.dumps(measure_inner_gains(16, [100, 101]), indent=1))
    gains = json.loads(gains_path.read_text()) if gains_path.exists() else None
    report = {"verdict": verdict(differences), "settings": differences, "inner_gains": gains}
    (args.folder / "schedule_order.json").write_text(json.dumps(report, indent=1))
    text = markdown(differences) + ("" if gains is None else gains_markdown(gains))
    (args.folder / "schedule_order.md").write_text(text)
    print((args.folder / "schedule_order.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
