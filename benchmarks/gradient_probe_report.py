"""Part H's summaries, readings and reports (``benchmarks/gradient_probe.py`` runs it).

:func:`summarise` gives, per step and reward, the shares of images whose
derivative along a move toward the centre and along a growth is positive;
:func:`probe_reading` and :func:`lookahead_reading` read them by the rules
fixed in the design (``docs/concepts/shapesbench.md``, "Part H").
"""

from __future__ import annotations

import statistics

#: Reward name -> label in the report.
REWARDS = {
    "target": "shapes-preference (target)",
    "heldout": "shapes-preference-heldout",
    "oracle": "gold's terms (oracle)",
}
#: A proxy asks for centring on a set of images when D_c > 0 on this fraction.
ASKS = 0.8
#: Steps whose mean centre distance to the final image is above this decide position.
DECIDING = 0.05
FINAL = "final"


def _balance(d_c: float, d_s: float) -> float:
    total = abs(d_c) + abs(d_s)
    return d_c / total if total > 0 else 0.0


def summarise(rows: list[dict]) -> dict:
    """Per step (and final) and reward: the fractions, the median balance, the centre distance."""
    steps: dict = {}
    for row in rows:
        steps.setdefault(str(row["step"]), {}).setdefault(row["reward"], []).append(row)
    out = {}
    for step, by_reward in steps.items():
        entry = {}
        for name, group in by_reward.items():
            directed = [r for r in group if r["d_c"] is not None]
            entry[name] = {
                "images": len(group),
                "centred": len(group) - len(directed),
                "asks_centre": sum(r["d_c"] > 0 for r in directed) / max(len(directed), 1),
                "asks_growth": sum(r["d_s"] > 0 for r in group) / len(group),
                "balance": statistics.median(_balance(r["d_c"], r["d_s"]) for r in directed)
                if directed
                else float("nan"),
            }
        first = next(iter(by_reward.values()))
        entry["to_final"] = statistics.fmean(r["to_final"] for r in first)
        out[step] = entry
    return {
        "steps": out,
        "final_gold_minus_part_a": plain_reproduction(rows),
        "readings": {
            name: probe_reading(out, name) for name in ("target", "heldout") if FINAL in out
        },
    }


def plain_reproduction(rows: list[dict]) -> float | None:
    """Largest gold difference of the final images from Part A's plain rows (None if none)."""
    from null_levers import PLAIN
    from null_oracle import LEVERS

    from nulltta.jsonl import read_rows

    part_a = {(r["prompt"], r["seed"]): r["shapes-gold"]
              for r in read_rows(LEVERS / "rows_a.jsonl") if r["arm"] == PLAIN}  # fmt: skip
    finals = [r for r in rows if r["step"] == FINAL and r["reward"] == "target"]
    differences = [abs(r["gold"] - part_a[(r["prompt"], r["seed"])]) for r in finals
                   if (r["prompt"], r["seed"]) in part_a]  # fmt: skip
    return max(differences) if differences else None


def probe_reading(steps: dict, reward: str) -> dict:
    """The design's rule for one proxy: does it ask for centring on the final images and at the
    deciding steps (mean centre distance to the final image above :data:`DECIDING`)?"""
    deciding = [s for s, e in steps.items() if s != FINAL and e["to_final"] > DECIDING]
    asks_final = steps[FINAL][reward]["asks_centre"] >= ASKS
    asked = [s for s in deciding if steps[s][reward]["asks_centre"] >= ASKS]
    asks_deciding = bool(deciding) and len(asked) == len(deciding)
    if asks_final and not asks_deciding:
        verdict = (
            "asks for centring on final images, not at the deciding steps: the proxy's gradient "
            "parts from gold's on the noisy steps' Tweedie estimates"
        )
    elif not asks_final:
        verdict = "does not ask for centring on final images: its gradient lacks centring"
    else:
        verdict = "asks for centring at the deciding steps too: the shortfall is elsewhere"
    return {
        "deciding_steps": deciding,
        "deciding_steps_asking": asked,
        "asks_on_final": asks_final,
        "asks_at_deciding_steps": asks_deciding,
        "verdict": verdict,
    }


def markdown(summary: dict) -> str:
    """``probe.md``: per step, what each reward asks, and the reading."""
    lines = [
        "# Part H: what each reward asks of each step's Tweedie estimate",
        "",
        'Design: docs/concepts/shapesbench.md, "Part H". Plain sampling, 48 pairs (16 prompts '
        "x seeds 0-2), 20 steps, CFG 5. Per step: the share of images on which the reward's "
        "derivative along a move toward the centre (D_c) and along a growth (D_s) is positive, "
        "and the median balance D_c / (|D_c| + |D_s|). 'to final' is the mean distance of "
        "the segmented centre from the final image's.",
        "",
        "| step | to final | "
        + " | ".join(f"{label}: D_c > 0 / D_s > 0 / balance" for label in REWARDS.values())
        + " |",
        "|---|---|" + "---|" * len(REWARDS),
    ]
    for step, entry in summary["steps"].items():
        cells = [
            f"{entry[name]['asks_centre']:.2f} / {entry[name]['asks_growth']:.2f} / "
            f"{entry[name]['balance']:+.2f}"
            for name in REWARDS
        ]
        lines.append(f"| {step} | {entry['to_final']:.3f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Final images against Part A's plain rows: largest gold difference "
        f"{summary['final_gold_minus_part_a']}.",
        "",
        "## Reading (the rule fixed in the design)",
        "",
    ]
    for name, reading in summary["readings"].items():
        lines.append(
            f"- **{REWARDS[name]}**: deciding steps {reading['deciding_steps']}; asks on "
            f"{reading['deciding_steps_asking']} of them; on final images "
            f"{'asks' if reading['asks_on_final'] else 'does not ask'}. {reading['verdict']}."
        )
    return "\n".join(lines) + "\n"


def lookahead_reading(one_step: dict, by_sub_steps: dict[int, dict]) -> dict:
    """Version 2's rule: does the target ask for centring at Part H's deciding steps?

    ``one_step`` is Part H's summary (it fixes the deciding steps); ``by_sub_steps``
    maps k to the summary of the look-ahead estimates with k sub-steps.
    """
    deciding = probe_reading(one_step["steps"], "target")["deciding_steps"]
    per_k = {}
    for sub_steps, summary in by_sub_steps.items():
        asked = [s for s in deciding if summary["steps"][s]["target"]["asks_centre"] >= ASKS]
        per_k[sub_steps] = {"deciding_steps_asking": asked}
    best = max(len(entry["deciding_steps_asking"]) for entry in per_k.values())
    if best == len(deciding):
        verdict = "the look-ahead restores the ask at every deciding step: worth a method option"
    elif best > len(deciding) / 2:
        verdict = "the look-ahead restores the ask at most deciding steps (partial)"
    else:
        verdict = "the look-ahead does not restore the ask: the one-step estimate is not the cause"
    return {"deciding_steps": deciding, "sub_steps": per_k, "verdict": verdict}


def lookahead_markdown(one_step: dict, by_sub_steps: dict[int, dict], reading: dict) -> str:
    """``lookahead.md``: D_c > 0 shares per step for k = 1 (Part H) and each look-ahead."""
    summaries = {1: one_step, **by_sub_steps}
    lines = [
        "# Part H, version 2: look-ahead estimates",
        "",
        'Design: docs/concepts/shapesbench.md, "Part H, version 2". The same plain trajectories '
        "and moves as Part H; the estimate at each step is deterministic DDIM over k sub-steps "
        "to 0 (k = 1 is Part H's). Cells: share of images with D_c > 0 / with D_s > 0.",
        "",
        "| step | " + " | ".join(f"{label}, k = {k}" for k in summaries
                                   for label in ("target", "oracle")) + " |",
        "|---|" + "---|" * (2 * len(summaries)),
    ]  # fmt: skip
    for step in one_step["steps"]:
        cells = [
            f"{summary['steps'][step][name]['asks_centre']:.2f} / "
            f"{summary['steps'][step][name]['asks_growth']:.2f}"
            for summary in summaries.values()
            for name in ("target", "oracle")
        ]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines += ["", "## Reading (the rule fixed in the design)", ""]
    lines.append(f"Deciding steps (Part H's): {reading['deciding_steps']}.")
    for sub_steps, entry in reading["sub_steps"].items():
        lines.append(f"- k = {sub_steps}: the target asks at {entry['deciding_steps_asking']}.")
    lines += ["", f"{reading['verdict']}."]
    return "\n".join(lines) + "\n"
