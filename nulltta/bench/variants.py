"""Variants of one method side by side: ratios and reward differences against a baseline.

Used by ``benchmarks/speed_options.py`` (cost options) and
``benchmarks/regularisation.py`` (KL settings): each runs a set of method
specs on the same ShapesBench (prompt, seed) pairs through the resumable
runner, then tabulates every variant against the baseline on the pairs both
have.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_shapesbench_variants", "shapesbench_run_parser", "variant_table", "variants_main"]


def _paired_mean_difference(pairs: list[tuple[dict, dict]], get: Callable[[dict], float]) -> float:
    return statistics.fmean(get(mine) - get(base) for mine, base in pairs)


def variant_table(
    rows: list[dict[str, Any]], variants: dict[str, str], baseline: str = "nulltta"
) -> str:
    """Markdown: each variant against ``baseline`` over the (prompt, seed) pairs both have.

    Columns: time, peak-memory and inner-step ratios to the baseline; time
    against plain sampling (if ``plain`` rows exist); the mean paired
    difference of the target, each held-out reward and fidelity; and the
    variant's own mean target, held-out rewards and fidelity.

    Parameters
    ----------
    rows : list of dict
        Runner rows (:func:`nulltta.bench.runner.load_rows`).
    variants : dict
        Method label -> one-line description, in table order.
    baseline : str
        The label every variant is compared with.
    """
    base = {(r["prompt"], r["seed"]): r for r in rows if r["method"] == baseline}
    plain = {(r["prompt"], r["seed"]): r for r in rows if r["method"] == "plain"}
    heldout = list(rows[0]["heldout"]) if rows else []
    header = ["variant", "pairs", "time x", "vs plain x", "peak mem x", "inner steps x"]
    header += ["Δ target", *[f"Δ {h}" for h in heldout], "Δ fidelity"]
    header += ["target", *heldout, "fidelity"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, text in variants.items():
        mine = [r for r in rows if r["method"] == label and (r["prompt"], r["seed"]) in base]
        if not mine:
            continue
        pairs = [(r, base[(r["prompt"], r["seed"])]) for r in mine]
        seconds = statistics.fmean(r["seconds"] for r, _ in pairs)
        time_ratio = seconds / statistics.fmean(b["seconds"] for _, b in pairs)
        plain_seconds = [plain[key]["seconds"] for key in ((r["prompt"], r["seed"]) for r in mine)
                         if key in plain]  # fmt: skip
        vs_plain = seconds / statistics.fmean(plain_seconds) if plain_seconds else float("nan")
        memory = statistics.median(r["peak_memory_delta_mb"] for r, _ in pairs)
        memory /= max(1e-9, statistics.median(b["peak_memory_delta_mb"] for _, b in pairs))
        base_steps = statistics.fmean(b["info"].get("inner_steps", 0) for _, b in pairs)
        steps = statistics.fmean(r["info"].get("inner_steps", 0) for r, _ in pairs)
        inner = steps / base_steps if base_steps else float("nan")
        cells = [f"`{label}`: {text}", str(len(pairs)), f"{time_ratio:.2f}", f"{vs_plain:.1f}"]
        cells += [f"{memory:.2f}", f"{inner:.2f}"]
        cells += [f"{_paired_mean_difference(pairs, lambda x: x['target']):+.4f}"]
        cells += [
            f"{_paired_mean_difference(pairs, lambda x, h=h: x['heldout'][h]):+.4f}"
            for h in heldout
        ]
        cells += [f"{_paired_mean_difference(pairs, lambda x: x['fidelity'] or 0.0):+.3f}"]
        cells += [f"{statistics.fmean(r['target'] for r in mine):.4f}"]
        cells += [f"{statistics.fmean(r['heldout'][h] for r in mine):.4f}" for h in heldout]
        cells += [f"{statistics.fmean((r['fidelity'] or 0.0) for r in mine):.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_shapesbench_variants(
    out: str | Path,
    labels: list[str],
    num_prompts: int,
    seeds: list[int],
    steps: int,
    title: str,
    shard: str = "0/1",
) -> int:
    """Run method specs on the first ``num_prompts`` ShapesBench prompts (resumable).

    Returns the exit status of ``nulltta bench``.
    """
    from ..cli import main as nulltta_main
    from .shapesbench import GUIDANCE_SCALE, shapesbench_prompts

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.txt"
    prompts.write_text("\n".join(shapesbench_prompts(num_prompts)) + "\n")
    return nulltta_main(
        ["bench", "--model", "embedded", "--methods", *labels]
        + ["--prompts", str(prompts), "--seeds", *map(str, seeds)]
        + ["--steps", str(steps), "--guidance-scale", str(GUIDANCE_SCALE)]
        + ["--title", title, "--out", str(out), "--threads", "1", "--shard", shard]
    )


def shapesbench_run_parser(
    doc: str, default_out: str | Path, default_prompts: int = 8, default_seeds: tuple = (0,)
):
    """The arguments every ShapesBench variants script shares.

    ``--out``, ``--prompts`` (the first N ShapesBench prompts), ``--seeds``,
    ``--steps`` (20) and ``--shard i/n``; a script adds its own.
    """
    import argparse

    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path(default_out))
    parser.add_argument("--prompts", type=int, default=default_prompts, help="first N prompts")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(default_seeds))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--shard", default="0/1")
    return parser


def variants_main(
    doc: str,
    variants: dict[str, str],
    *,
    name: str,
    title: str,
    default_out: str,
    default_prompts: int = 8,
    baseline: str = "nulltta-release",
    argv: list[str] | None = None,
) -> int:
    """Command line of a variants benchmark script (``benchmarks/speed_options.py`` and co.).

    Runs the chosen variants (all by default) on the first ``--prompts``
    ShapesBench prompts and ``--seeds`` (resumable, ``--shard i/n`` for
    parallel processes), then writes ``<out>/<name>.md`` (the table against
    ``baseline``) and ``<out>/<name>.json`` (the rows) and prints the table.
    """
    import json

    from .runner import load_rows
    from .shapesbench import GUIDANCE_SCALE

    parser = shapesbench_run_parser(doc, default_out, default_prompts)
    parser.add_argument("--variants", nargs="+", default=list(variants), help="method specs")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    out = args.out
    if not args.table_only:
        status = run_shapesbench_variants(
            out, args.variants, args.prompts, args.seeds, args.steps, title, args.shard
        )
        if status:
            return status
    rows = load_rows(out)
    text = (
        f"# {title}\n\n{len({(r['prompt'], r['seed']) for r in rows})} (prompt, seed) pairs, "
        f"{args.steps} steps, CFG {GUIDANCE_SCALE}. Ratios and differences are against "
        f"`{baseline}` ({variants.get(baseline, baseline)}) on the same pairs; time and memory "
        "as in the main table (peak memory: median over images).\n\n"
        + variant_table(rows, {k: variants.get(k, k) for k in args.variants}, baseline)
    )
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    print(text)
    return 0
