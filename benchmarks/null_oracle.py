"""Part G of the levers follow-up: Null-TTA against gold's own ungated terms (an oracle).

    python benchmarks/null_oracle.py --arm g0   # one arm per process, any order
    python benchmarks/null_oracle.py --arm g1
    python benchmarks/null_oracle.py --arm g2
    python benchmarks/null_oracle.py --arm g3g   # version 2: the soft gate
    python benchmarks/null_oracle.py --arm g3
    python benchmarks/null_oracle.py --report-only

Written before it ran (``docs/concepts/shapesbench.md``, "Part G"). The
reward is gold's formula without its gate, ``0.5 size_term(s) + 0.5
centring(cx, cy)`` of gold's segmentation with the gradient kept
(:func:`oracle_score`), in place of ``shapes-preference``:

- **G0**: greedy selection alone (K = 3, no inner steps);
- **G1** (primary): Null-TTA with the shipped defaults;
- **G2**: G1 with lambda2 = 0.

Version 2 of the design adds the soft-gated oracle, gold with its gate
replaced by the classifier's probability of the prompt
(``oracle_reward(soft_gate=True)``): **G3g** (greedy alone) and **G3**
(Null-TTA with the shipped defaults), G3 read against G3g.

Each arm runs the main table's 48 pairs at its sampler and writes
``rows_<arm>.jsonl``; the report pairs them with the levers follow-up's plain
and Null-TTA (proxy) rows and reads G1 and G2 by the rule fixed in the
design (:func:`oracle_reading`). An arm already in its rows file is not run
again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from levers_setup import add_run_arguments, table_world
from null_levers import MEASURES, NULLTTA, PLAIN, _sampler, _score_rows
from torch import Tensor

from nulltta.rewards import CallableReward

G0 = "greedy selection alone, oracle"
G1 = "Null-TTA, oracle"
G2 = "Null-TTA, oracle, lambda2 0"
G3G = "greedy selection alone, soft-gated oracle"
G3 = "Null-TTA, soft-gated oracle"
GREEDY = {"n_min": 0, "n_max": 0}
#: Arm -> (name, the estimator settings that differ from the shipped defaults, soft gate).
ORACLE_ARMS: dict[str, tuple[str, dict, bool]] = {
    "g0": (G0, GREEDY, False),
    "g1": (G1, {}, False),
    "g2": (G2, {"kl_weight": 0.0}, False),
    "g3g": (G3G, GREEDY, True),
    "g3": (G3, {}, True),
}
#: Each arm read by the design's rule -> the greedy arm it is read against; G1 is primary.
READ_ARMS = {"g1": "g0", "g2": "g0", "g3": "g3g"}
LEVERS = Path(__file__).resolve().parent / "results" / "null_levers"


def oracle_score(images: Tensor, prompts: list[str]) -> Tensor:
    """``0.5 size_term(s) + 0.5 centring(cx, cy)`` of gold's segmentation, differentiable.

    Gold (:func:`nulltta.shapes.gold.gold_score`) without its gate, which is a
    classifier's argmax and has no gradient.
    """
    from nulltta.shapes.gold import gold_from_geometry, measure

    geometry = measure(images, prompts, keep_gradient=True)
    return gold_from_geometry(geometry.size, geometry.cx, geometry.cy)


def oracle_reward(soft_gate: bool = False) -> CallableReward:
    """:func:`oracle_score` as a differentiable, prompt-conditioned reward.

    With ``soft_gate``, times the classifier's joint probability that the
    image shows the prompt's shape, colour and background (``shapes-fidelity``):
    gold with its argmax gate replaced by that probability.
    """
    if not soft_gate:
        return CallableReward(
            oracle_score, differentiable=True, requires_prompts=True, name="gold terms (oracle)"
        )
    from nulltta.shapes.rewards import ShapesFidelity

    fidelity = ShapesFidelity()

    def soft_gated(images: Tensor, prompts: list[str]) -> Tensor:
        return fidelity.score(images, prompts) * oracle_score(images, prompts)

    return CallableReward(
        soft_gated, differentiable=True, requires_prompts=True, name="gold, soft gate (oracle)"
    )


def run_arm(pipe, pairs: list[tuple[str, int]], scorers, batch_size: int, arm: str) -> list[dict]:
    """One arm on the pairs: Part A's measures per pair and phi''s displacement."""
    from nulltta import NullTextAligner
    from nulltta.adapters import make_adapter

    name, settings, soft_gate = ORACLE_ARMS[arm]
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    reward = oracle_reward(soft_gate)
    aligner = NullTextAligner(pipe, reward, **settings, **_sampler(batch_size))
    aligner.fit(prompts, seeds=seeds)
    rows = _score_rows(name, aligner, prompts, seeds, scorers)
    adapter = make_adapter(pipe)
    with torch.no_grad():
        phi = adapter.pack_null(adapter.encode_prompt("")[1])[0].cpu()
        for row, phis in zip(rows, aligner.phis_, strict=True):
            row["displacement"] = float((phis[-1][0].cpu() - phi).norm())
    return rows


def paired(mine: dict, other: dict, key: str) -> dict[str, float]:
    """Mean ± standard error over the pairs both hold of ``mine[key] - other[key]``."""
    from null_levers_report import mean_se

    pairs = sorted(set(mine) & set(other))
    return mean_se([mine[p][key] - other[p][key] for p in pairs])


def oracle_reading(arm: dict, greedy: dict, plain_fidelity: float) -> dict:
    """The design's rule: centring above greedy's by more than 2 SE, fidelity within 2 of plain.

    Parameters
    ----------
    arm, greedy : dict
        ``(prompt, seed) -> row`` of the arm read and of the greedy arm with
        its reward (G0, or G3g for G3).
    plain_fidelity : float
        Plain sampling's mean fidelity on the same pairs.

    """
    from null_levers_report import FIDELITY_MARGIN

    centring = paired(arm, greedy, "centring")
    fidelity = sum(r["fidelity"] for r in arm.values()) / len(arm)
    moved = centring["mean"] > 2 * centring["se"]
    kept = fidelity >= plain_fidelity - FIDELITY_MARGIN
    if moved and kept:
        verdict = "phi' moves position when the gradient asks: the proxy's gradient is missing"
    elif moved:
        verdict = "phi' moves position when the gradient asks, at a cost to the prompt"
    else:
        verdict = "gold's own gradient does not move position through phi': the mechanism"
    return {
        "centring_minus_greedy": centring,
        "fidelity": fidelity,
        "moved": moved,
        "fidelity_kept": kept,
        "verdict": verdict,
    }


def oracle_rows(folder: Path) -> list[dict]:
    """Every arm's rows written so far in ``folder``."""
    from nulltta.jsonl import read_rows

    return [r for arm in ORACLE_ARMS for r in read_rows(folder / f"rows_{arm}.jsonl")]


def reference_rows() -> list[dict]:
    """The levers follow-up's plain (Part A) and proxy Null-TTA (Part B) rows."""
    from nulltta.jsonl import read_rows

    return [
        r
        for part, arm in (("a", PLAIN), ("b", NULLTTA))
        for r in read_rows(LEVERS / f"rows_{part}.jsonl")
        if r["arm"] == arm
    ]


def summarise(rows: list[dict], reference: list[dict]) -> dict:
    """Per arm: means, paired differences from G0, plain and the proxy's Null-TTA; the reading."""
    from null_levers_report import mean_se

    by_arm: dict[str, dict] = {}
    for row in [*reference, *rows]:
        by_arm.setdefault(row["arm"], {})[(row["prompt"], row["seed"])] = row
    names = {arm: name for arm, (name, _, _) in ORACLE_ARMS.items()}
    compared = {
        "G0": names["g0"],
        "G3g": names["g3g"],
        "plain": PLAIN,
        "proxy Null-TTA": NULLTTA,
    }
    arms = {}
    for name in (PLAIN, NULLTTA, *names.values()):
        mine = by_arm.get(name)
        if not mine:
            continue
        arms[name] = {
            "pairs": len(mine),
            **{key: mean_se([r[key] for r in mine.values()]) for key in MEASURES},
            "minus": {
                label: {key: paired(mine, by_arm[other], key) for key in MEASURES}
                for label, other in compared.items()
                if other != name and other in by_arm
            },
        }
        if "displacement" in next(iter(mine.values())):
            arms[name]["displacement"] = mean_se([r["displacement"] for r in mine.values()])
    readings = {}
    for arm, greedy in READ_ARMS.items():
        if names[arm] in by_arm and names[greedy] in by_arm and PLAIN in by_arm:
            readings[arm] = {
                "arm": names[arm],
                "against": names[greedy],
                "primary": arm == "g1",
                **oracle_reading(
                    by_arm[names[arm]], by_arm[names[greedy]], arms[PLAIN]["fidelity"]["mean"]
                ),
            }
    return {"arms": arms, "readings": readings}


def markdown(summary: dict) -> str:
    """``oracle.md``: the arms' means, their differences from G0, and the readings."""
    from null_levers_report import _pm

    lines = [
        "# Part G: Null-TTA against gold's own terms (an oracle)",
        "",
        'Design: docs/concepts/shapesbench.md, "Part G". 48 pairs (16 prompts x seeds 0-2), '
        "20 steps, CFG 5. Means ± standard error over pairs; differences are paired. "
        "Plain and proxy Null-TTA rows are the levers follow-up's (Parts A and B).",
        "",
        "| arm | " + " | ".join(MEASURES) + " | displacement |",
        "|---|" + "---|" * (len(MEASURES) + 1),
    ]
    for name, entry in summary["arms"].items():
        shift = _pm(entry["displacement"]) if "displacement" in entry else "-"
        lines.append(
            f"| {name} | " + " | ".join(_pm(entry[key]) for key in MEASURES) + f" | {shift} |"
        )
    for label in ("G0", "G3g", "plain", "proxy Null-TTA"):
        lines += ["", f"## Minus {label}, paired", ""]
        lines += ["| arm | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
        for name, entry in summary["arms"].items():
            if label in entry["minus"]:
                cells = [_pm(entry["minus"][label][key], signed=True) for key in MEASURES]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Reading (the rule fixed in the design)", ""]
    lines += [
        "| arm | read against | centring minus it | fidelity | reading |",
        "|---|---|---|---|---|",
    ]
    for entry in summary["readings"].values():
        role = "primary" if entry["primary"] else "secondary"
        lines.append(
            f"| {entry['arm']} ({role}) | {entry['against']} | "
            f"{_pm(entry['centring_minus_greedy'], signed=True)} | "
            f"{entry['fidelity']:.3f} | {entry['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the arm asked for unless its rows exist, then write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, "benchmarks/results/null_oracle")
    parser.add_argument("--arm", choices=tuple(ORACLE_ARMS), default=None)
    args = parser.parse_args(argv)
    from nulltta.jsonl import append_row, read_rows

    args.out.mkdir(parents=True, exist_ok=True)
    if args.arm and not args.report_only and not read_rows(args.out / f"rows_{args.arm}.jsonl"):
        pipe, scorers, pairs = table_world(args.prompts, args.threads)
        started = time.perf_counter()
        for row in run_arm(pipe, pairs, scorers, args.batch_size, args.arm):
            append_row(args.out / f"rows_{args.arm}.jsonl", row)
        print(f"arm {args.arm}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = oracle_rows(args.out)
    if not rows:
        print("nothing has run yet: no report")
        return 0
    summary = summarise(rows, reference_rows())
    (args.out / "oracle.json").write_text(json.dumps(summary, indent=1))
    (args.out / "oracle.md").write_text(markdown(summary))
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
