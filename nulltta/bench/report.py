"""Summaries of a benchmark run: a Markdown table like the paper's Table 1, and JSON.

Quality columns are the mean over prompts for each seed, then mean ± std
over seeds; cost columns are per image, averaged over every image.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .runner import RUN_FILE, load_rows

__all__ = ["markdown_table", "summarize", "write_report"]

COUNT_KEYS = ("unet_forward", "unet_backward", "vae_decode", "vae_backward", "reward_calls")


def _seed_spread(rows: list[dict[str, Any]], value: Callable[[dict], float | None]) -> dict:
    by_seed: dict[int, list[float]] = {}
    for row in rows:
        v = value(row)
        if v is not None:
            by_seed.setdefault(row["seed"], []).append(v)
    means = [statistics.fmean(vs) for vs in by_seed.values()]
    if not means:
        return {"mean": None, "std": None}
    std = statistics.stdev(means) if len(means) > 1 else 0.0
    return {"mean": statistics.fmean(means), "std": std}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-method statistics, in the order methods first appear in ``rows``."""
    labels = list(dict.fromkeys(row["method"] for row in rows))
    plain = {(r["prompt"], r["seed"]): r["target"] for r in rows if r["method"] == "plain"}
    plain_seconds = [r["seconds"] for r in rows if r["method"] == "plain"]
    summary = {}
    for label in labels:
        mine = [r for r in rows if r["method"] == label]
        heldout_names = list(mine[0]["heldout"])
        entry: dict[str, Any] = {
            "images": len(mine),
            "target": _seed_spread(mine, lambda r: r["target"]),
            "heldout": {
                name: _seed_spread(mine, lambda r, n=name: r["heldout"][n])
                for name in heldout_names
            },
            "fidelity": _seed_spread(mine, lambda r: r["fidelity"]),
            "seconds": statistics.fmean(r["seconds"] for r in mine),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in mine),
            "peak_memory_delta_mb": statistics.median(r["peak_memory_delta_mb"] for r in mine),
            "memory_kind": mine[0]["memory_kind"],
        }
        entry.update({key: statistics.fmean(r[key] for r in mine) for key in COUNT_KEYS})
        pairs = [
            (r["target"], plain[(r["prompt"], r["seed"])])
            for r in mine
            if (r["prompt"], r["seed"]) in plain
        ]
        entry["beats_plain"] = (
            statistics.fmean(float(a > b) for a, b in pairs) if pairs and label != "plain" else None
        )
        entry["time_vs_plain"] = (
            entry["seconds"] / statistics.fmean(plain_seconds) if plain_seconds else None
        )
        summary[label] = entry
    return summary


def _pm(stat: dict[str, Any], digits: int = 3) -> str:
    if stat["mean"] is None:
        return "–"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def markdown_table(summary: dict[str, dict[str, Any]], run: dict[str, Any]) -> str:
    """The results table, with a header stating what was run and how it is measured."""
    heldout = list(next(iter(summary.values()))["heldout"]) if summary else []
    set_names = sorted({k for e in summary.values() for k in e.get("set_metrics", {})})
    sampling = run.get("sampling", {})
    seeds = sorted({s for e in summary.values() for s in e.get("seeds", [])})
    lines = [
        f"# {run.get('title', 'Benchmark')}",
        "",
        f"Model `{run.get('model', '?')}`; target `{run.get('target', '?')}`; held-out "
        + (", ".join(f"`{h}`" for h in heldout) or "none")
        + f"; fidelity `{run.get('fidelity') or 'none'}`. "
        f"{len(run.get('prompts', []))} prompts x {len(seeds) or '?'} seeds; "
        f"sampler DDIM eta = 1, {sampling.get('num_inference_steps', '?')} steps, "
        f"CFG {sampling.get('guidance_scale') or 'model default'}; device "
        f"{run.get('device', '?')}, {run.get('threads', '?')} thread(s) per process.",
        "",
        *([run["note"], ""] if run.get("note") else []),
        "Quality: mean over prompts per seed, then mean ± std over seeds. Cost: mean per "
        "image; UNet/VAE/reward columns count images through each network (a CFG pass is 2 "
        "UNet forwards). Peak memory: median over images of the peak above the level before "
        "the image (process RSS on CPU, CUDA max allocated on GPU). Beats plain: fraction of "
        "(prompt, seed) pairs with a higher target reward than plain sampling.",
        "",
    ]
    header = ["Method", "Target ↑", *[f"{h} ↑" for h in heldout], "Fidelity ↑"]
    header += [f"{name} ↓" for name in set_names]
    header += ["Time (s)", "x plain", "Peak mem (MB)", "UNet fwd", "UNet bwd", "VAE dec"]
    header += ["Reward calls", "Beats plain"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, e in summary.items():
        cells = [f"`{label}`", _pm(e["target"])]
        cells += [_pm(e["heldout"][h]) for h in heldout]
        cells += [_pm(e["fidelity"], 2)]
        cells += [f"{e['set_metrics'][n]:.2f}" for n in set_names]
        cells += [f"{e['seconds']:.1f}", f"{e['time_vs_plain']:.1f}" if e["time_vs_plain"] else "–"]
        cells += [f"{e['peak_memory_delta_mb']:.0f}"]
        cells += [f"{e[k]:.0f}" for k in ("unet_forward", "unet_backward", "vae_decode")]
        cells += [f"{e['reward_calls']:.0f}"]
        cells += [f"{e['beats_plain']:.0%}" if e["beats_plain"] is not None else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Methods", ""]
    for label, settings in run.get("methods", {}).items():
        if label not in summary:
            continue
        shown = {k: v for k, v in settings.items() if k not in ("class", "follows")}
        lines.append(
            f"- `{label}`: {settings.get('class')} ({settings.get('follows')}); "
            + (", ".join(f"{k}={v}" for k, v in shown.items()) or "no settings")
        )
    return "\n".join(lines) + "\n"


def _load_images(out: Path, rows: list[dict[str, Any]]) -> torch.Tensor:
    arrays = [
        np.asarray(Image.open(out / r["image"]).convert("RGB"), np.float32) / 255 for r in rows
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def write_report(
    out_dir: str | Path,
    set_metrics: dict[str, Callable[[torch.Tensor], float]] | None = None,
    plots: bool = True,
) -> dict[str, dict[str, Any]]:
    """Write ``results.json``, ``results.md``, ``pareto.png`` and ``grids/`` from the rows.

    Parameters
    ----------
    out_dir : path
        A folder written by :func:`~nulltta.bench.runner.run_benchmark`.
    set_metrics : dict of str to callable, optional
        Metrics of a whole set of images (e.g. a Frechet distance), computed
        per method over its saved images.
    plots : bool, default=True
        Also draw the Pareto plot and the image grids.

    """
    from .plots import image_grids, pareto_plot

    out = Path(out_dir)
    rows = load_rows(out)
    if not rows:
        raise FileNotFoundError(f"no rows in {out}; run the benchmark first")
    run = json.loads((out / RUN_FILE).read_text()) if (out / RUN_FILE).exists() else {}
    summary = summarize(rows)
    for label, entry in summary.items():
        mine = [r for r in rows if r["method"] == label]
        entry["seeds"] = sorted({r["seed"] for r in mine})
        if set_metrics:
            images = _load_images(out, mine)
            entry["set_metrics"] = {name: float(fn(images)) for name, fn in set_metrics.items()}
    (out / "results.json").write_text(
        json.dumps({"run": run, "summary": summary, "rows": rows}, indent=1)
    )
    (out / "results.md").write_text(markdown_table(summary, run))
    if plots:
        pareto_plot(summary, run.get("target", "target"), out / "pareto.png")
        image_grids(out, rows)
    return summary
