"""The report of ``null_levers.py``: a pure function of its rows and the main table's.

:func:`summarise` pairs every arm against plain sampling and reads each part
by the rule its design fixed before it ran (``docs/concepts/shapesbench.md``,
"Follow-up: the null branch's semantic levers" and its version 2);
:func:`markdown` writes ``levers.md`` from the summary.
"""

from __future__ import annotations

import statistics

from null_levers import (
    ARMS,
    CEILING,
    MANIFOLD,
    MEASURES,
    NORMS,
    NULLTTA,
    PART_C_PLAIN,
    PLAIN,
    PRIMARY,
    TOWARD_GOLD,
    part_c_arms,
    part_d_arms,
)
from null_levers_span import SPAN_PARTS, part_f_lines, part_f_summary

#: How far below plain sampling's fidelity an arm may be and still keep the prompt.
FIDELITY_MARGIN = 0.02


def mean_se(values: list[float]) -> dict[str, float]:
    """Mean and standard error (sample standard deviation / sqrt(n))."""
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return {"mean": statistics.fmean(values), "se": se}


def summarise(rows: list[dict], table_rows: list[dict]) -> dict:
    """Per arm: means and paired differences from plain; each part read by its stated rule."""
    by_arm: dict[str, dict[tuple[str, int], dict]] = {}
    norms = [r for r in rows if r["arm"] == NORMS]
    for row in rows:
        if row["arm"] != NORMS:
            by_arm.setdefault(row["arm"], {})[(row["prompt"], row["seed"])] = row
    plain = by_arm.get(PLAIN, {})
    summary: dict = {"arms": {}, "levers": {}, "checks": {}}
    for arm, mine in by_arm.items():
        pairs = sorted(set(mine) & set(plain))
        if not pairs:  # nothing to pair with before plain sampling has run
            continue
        summary["arms"][arm] = {
            key: {
                **mean_se([mine[p][key] for p in pairs]),
                "minus_plain": mean_se([mine[p][key] - plain[p][key] for p in pairs]),
            }
            for key in MEASURES
        } | {"pairs": len(pairs)}
    for arm, (_, _, measure_name, sign) in ARMS.items():
        if arm in summary["arms"]:
            moved = summary["arms"][arm][measure_name]["minus_plain"]
            summary["levers"][arm] = {
                "measure": measure_name,
                "predicted_sign": sign,
                **moved,
                "exists": bool(sign * moved["mean"] > 2 * moved["se"]),
            }
    references = {
        PLAIN: ("the main table's plain rows", _table_gold(table_rows, "plain")),
        NULLTTA: ("the main table's Null-TTA rows", _table_gold(table_rows, "nulltta")),
        MANIFOLD: (
            "the main table's text-manifold rows",
            _table_gold(table_rows, "nulltta-manifold"),
        ),
        PART_C_PLAIN: ("Part A's plain arm", {p: r["shapes-gold"] for p, r in plain.items()}),
    }
    for arm, (against, reference) in references.items():
        mine = by_arm.get(arm, {})
        common = sorted(set(mine) & set(reference))
        if common:
            summary["checks"][arm] = {
                "against": against,
                "pairs": len(common),
                "max_gold_difference": max(
                    abs(mine[p]["shapes-gold"] - reference[p]) for p in common
                ),
            }
    directed = [r for r in rows if r["arm"] == NULLTTA]
    if directed:
        summary["part_b"] = displacement_stats(directed)
    on_manifold = [r for r in rows if r["arm"] == MANIFOLD]
    if on_manifold and directed:
        summary["part_e"] = {**displacement_stats(on_manifold),
                             **part_e_reading(by_arm[MANIFOLD], by_arm[NULLTTA])}  # fmt: skip
    if PLAIN in summary["arms"] and (part_f := part_f_summary(by_arm, summary["arms"])):
        summary["part_f"] = part_f
    if norms:
        summary["norms"] = {
            "prompts": len(norms),
            "norm": {name: mean_se([r["norm"][name] for r in norms]) for name in norms[0]["norm"]},
            "example": {"prompt": norms[0]["prompt"], "per_token": norms[0]["per_token"]},
        }
    if PRIMARY in summary["arms"] and PLAIN in summary["arms"]:
        summary["part_c"] = part_c_reading(summary["arms"][PRIMARY], summary["arms"][PLAIN])
    if any(arm in summary["arms"] for arm in part_d_arms()) and PLAIN in summary["arms"]:
        summary["part_d"] = part_d_reading(summary["arms"])
    return summary


def displacement_stats(directed: list[dict]) -> dict:
    """Mean ± SE of each cosine, the span fraction and the displacement; chance's fraction."""
    return {
        "cosine": {
            name: mean_se([r["cosine"][name] for r in directed]) for name in directed[0]["cosine"]
        },
        "span_fraction": mean_se([r["span_fraction"] for r in directed]),
        "span_directions": directed[0]["span_directions"],
        "displacement": mean_se([r["displacement"] for r in directed]),
        "chance_span_fraction": directed[0]["span_directions"] / directed[0]["numbers"],
    }


def part_e_reading(manifold: dict, free: dict) -> dict:
    """Part E's reading: manifold minus free phi', paired, each > 2 SE up or not."""
    pairs = sorted(set(manifold) & set(free))
    span = mean_se([manifold[p]["span_fraction"] - free[p]["span_fraction"] for p in pairs])
    toward = mean_se(
        [manifold[p]["cosine"][TOWARD_GOLD] - free[p]["cosine"][TOWARD_GOLD] for p in pairs]
    )
    return {
        "minus_free": {"span_fraction": span, "cosine toward gold": toward},
        "more_semantic": bool(span["mean"] > 2 * span["se"]),
        "more_toward_gold": bool(toward["mean"] > 2 * toward["se"]),
    }


def _table_gold(table_rows: list[dict], method: str) -> dict[tuple[str, int], float]:
    return {
        (r["prompt"], r["seed"]): r["heldout"]["shapes-gold"]
        for r in table_rows
        if r["method"] == method
    }


def part_c_reading(primary: dict, plain: dict) -> dict:
    """Version 2's primary reading: gold up by > 2 SE, fidelity within 2 points of plain."""
    gold = primary["shapes-gold"]["minus_plain"]
    fidelity_kept = primary["fidelity"]["mean"] >= plain["fidelity"]["mean"] - FIDELITY_MARGIN
    raised = gold["mean"] > 2 * gold["se"]
    if raised and fidelity_kept:
        verdict = (
            "a semantic phi' raises gold without breaking the prompt: Null-TTA's shortfall "
            "is a limit of the optimisation against the proxy"
        )
    else:
        verdict = "no semantic phi' of this form raises gold with the prompt kept"
    return {"arm": PRIMARY, "gold_raised": raised, "fidelity_kept": fidelity_kept,
            "verdict": verdict}  # fmt: skip


def part_d_reading(arms: dict) -> dict:
    """Version 3's reading: the best gold within 2 points of plain's fidelity, > 2 SE up?"""
    floor = arms[PLAIN]["fidelity"]["mean"] - FIDELITY_MARGIN
    kept = [arm for arm in part_d_arms() if arm in arms and arms[arm]["fidelity"]["mean"] >= floor]
    if not kept:
        verdict = "every arm breaks the prompt: no semantic phi' of this form keeps it"
        return {"arm": None, "gold_raised": False, "verdict": verdict}
    best = max(kept, key=lambda arm: arms[arm]["shapes-gold"]["mean"])
    gold = arms[best]["shapes-gold"]["minus_plain"]
    raised = gold["mean"] > 2 * gold["se"]
    if raised:
        verdict = (
            "a semantic phi' raises gold without breaking the prompt: Null-TTA's shortfall in "
            "size is a limit of the optimisation against the proxy"
        )
    else:
        verdict = "no arm that keeps the prompt raises gold by more than 2 SE"
    return {"arm": best, "gold_raised": raised, "verdict": verdict}


def _pm(entry: dict, digits: int = 3, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{entry['mean']:{sign}.{digits}f} ± {entry['se']:.{digits}f}"


def _arm_table(summary: dict, arms: list[str]) -> list[str]:
    lines = ["| arm | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
    for arm in arms:
        entry = summary["arms"].get(arm)
        if entry is None:
            continue
        cells = [
            f"{entry[k]['mean']:.3f}"
            if arm == PLAIN
            else f"{entry[k]['mean']:.3f} ({_pm(entry[k]['minus_plain'], signed=True)})"
            for k in MEASURES
        ]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def markdown(summary: dict) -> str:
    """The three parts' tables, each read by its stated rule, and the checks."""
    lines = [
        "# The null branch's semantic levers",
        "",
        "The main table's 48 pairs (16 ShapesBench prompts x seeds 0, 1, 2), 20 steps, CFG 5, "
        "DDIM eta 1; every image scored against its benchmark prompt. Each cell: mean, then "
        "the difference from plain sampling paired over the pairs (mean ± standard error). "
        "`diagonal` is (cx + cy) / 2 (y down): larger is nearer the bottom right. The design "
        'is in docs/concepts/shapesbench.md ("Follow-up: the null branch\'s semantic levers").',
        "",
        "## Part A: phi = text_encoder(N), a negative caption",
        "",
        *_arm_table(summary, [PLAIN, *ARMS, CEILING]),
        "",
        "Levers (one exists if it moves its measure the predicted way by more than 2 SE):",
        "",
        "| arm | measure | predicted | moved | exists |",
        "|---|---|---|---|---|",
    ]
    for arm, lever in summary["levers"].items():
        lines.append(
            f"| {arm} | {lever['measure']} | {'up' if lever['predicted_sign'] > 0 else 'down'}"
            f" | {_pm(lever, signed=True)} | {'yes' if lever['exists'] else 'no'} |"
        )
    if "part_b" in summary:
        part_b = summary["part_b"]
        lines += [
            "",
            "## Part B: where the shipped defaults' phi' moves",
            "",
            *_arm_table(summary, [PLAIN, NULLTTA]),
            "",
            f"Displacement ||phi' - phi||: {_pm(part_b['displacement'])}. Fraction of its "
            f"squared norm in the span of the first {part_b['span_directions']} directions "
            f"below: {_pm(part_b['span_fraction'])} (as many directions at random: "
            f"{part_b['chance_span_fraction']:.4f}).",
            "",
            "| direction | cosine with phi' - phi |",
            "|---|---|",
        ]
        for name, entry in part_b["cosine"].items():
            lines.append(f"| {name} | {_pm(entry, signed=True)} |")
    if any(arm in summary["arms"] for arm in part_c_arms()):
        lines += [
            "",
            "## Part C (version 2): phi' = phi - alpha d_L, d_L = text_encoder(P_L) - "
            "text_encoder(P)",
            "",
            *_arm_table(summary, list(part_c_arms())),
        ]
        if "part_c" in summary:
            reading = summary["part_c"]
            lines += ["", f"Primary reading ({reading['arm']}): {reading['verdict']}."]
    if any(arm in summary["arms"] for arm in part_d_arms()):
        lines += [
            "",
            "## Part D (version 3): phi' = phi - alpha d_ls, d_ls = text_encoder(a large P) - "
            "text_encoder(a small P)",
            "",
            *_arm_table(summary, list(part_d_arms())),
        ]
        if "part_d" in summary:
            reading = summary["part_d"]
            chosen = reading["arm"] or "no arm keeps it"
            caveat = (
                " The best of four arms on the same pairs favours a yes." if reading["arm"] else ""
            )
            lines += [
                "",
                f"Reading (the best gold within 2 points of plain's fidelity: {chosen}): "
                f"{reading['verdict']}.{caveat}",
            ]
    if "part_e" in summary:
        free, manifold = summary["part_b"], summary["part_e"]
        differences = manifold["minus_free"]
        lines += [
            "",
            "## Part E: where phi' on the text manifold moves",
            "",
            *_arm_table(summary, [PLAIN, NULLTTA, MANIFOLD]),
            "",
            f"Displacement ||phi' - phi||: {_pm(manifold['displacement'])} (free phi': "
            f"{_pm(free['displacement'])}). Span fraction: {_pm(manifold['span_fraction'])} "
            f"(free: {_pm(free['span_fraction'])}; manifold minus free, paired: "
            f"{_pm(differences['span_fraction'], signed=True)}).",
            "",
            "| direction | cosine, free phi' | cosine, text manifold |",
            "|---|---|---|",
            *(
                f"| {name} | {_pm(free['cosine'][name], signed=True)} | {_pm(entry, signed=True)} |"
                for name, entry in manifold["cosine"].items()
            ),
            "",
            "Reading (manifold minus free phi', paired, > 2 SE): more along these semantic "
            f"directions: {'yes' if manifold['more_semantic'] else 'no'}; more toward gold "
            f"({_pm(differences['cosine toward gold'], signed=True)}): "
            f"{'yes' if manifold['more_toward_gold'] else 'no'}.",
        ]
    lines += part_f_lines(summary, _arm_table)
    if "norms" in summary:
        norms = summary["norms"]
        example = norms["example"]
        lines += [
            "",
            f"Sizes of the directions (norms, mean ± SE over {norms['prompts']} prompts; "
            "phi' of the shipped defaults moves by the Part B displacement above):",
            "",
            "| direction | norm |",
            "|---|---|",
            *(f"| {name} | {_pm(entry, 2)} |" for name, entry in norms["norm"].items()),
            "",
            f'Per token position, for "{example["prompt"]}":',
            "",
            "| direction | norm at each of the text encoder's positions |",
            "|---|---|",
            *(
                f"| {name} | {' '.join(f'{v:.1f}' for v in values)} |"
                for name, values in example["per_token"].items()
            ),
        ]
    lines += ["", "## Checks", ""]
    for arm, check in summary["checks"].items():
        lines.append(
            f"- {arm}: {check['pairs']} pairs, largest gold difference from "
            f"{check['against']} {check['max_gold_difference']:.2e}"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict, path) -> None:
    """Gold against fidelity, one point per arm (mean ± SE): which levers keep the prompt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 6))
    groups = {
        "Part A: negative caption": [*ARMS, CEILING],
        "Part C: phi - alpha d_L": [arm for arm in part_c_arms() if arm != PART_C_PLAIN],
        "Part D: phi - alpha d_ls (token-aligned)": list(part_d_arms()),
        "Part F: phi' in the semantic span, optimised": [arm for arm, _ in SPAN_PARTS.values()],
        "reference": [PLAIN, NULLTTA, MANIFOLD],
    }
    for (group, arms), marker in zip(groups.items(), ("o", "s", "^", "D", "*"), strict=True):
        for arm in arms:
            entry = summary["arms"].get(arm)
            if entry is None:
                continue
            fidelity, gold = entry["fidelity"], entry["shapes-gold"]
            axes.errorbar(fidelity["mean"], gold["mean"], xerr=fidelity["se"], yerr=gold["se"],
                          marker=marker, capsize=2, linestyle="none")  # fmt: skip
            axes.annotate(arm, (fidelity["mean"], gold["mean"]), fontsize=6,
                          xytext=(3, 3), textcoords="offset points")  # fmt: skip
        axes.plot([], [], marker=marker, linestyle="none", color="gray", label=group)
    plain_fidelity = summary["arms"][PLAIN]["fidelity"]["mean"]
    axes.axvline(plain_fidelity - FIDELITY_MARGIN, color="red", linewidth=0.8,
                 label="plain fidelity - 2 points")  # fmt: skip
    axes.set_xlabel("prompt fidelity")
    axes.set_ylabel("gold (never optimised)")
    axes.set_title("The null branch's levers: gold against fidelity (48 pairs)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
