"""Pictures of a benchmark run: target vs held-out (Pareto) and image grids per prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

__all__ = ["image_grids", "pareto_front", "pareto_plot"]


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Labels of the points no other point beats on both coordinates, by first coordinate."""
    front = [
        label
        for label, (x, y) in points.items()
        if not any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for x2, y2 in points.values())
    ]
    return sorted(front, key=lambda label: points[label][0])


def _panels(summary: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """``(title, key)`` of each y axis: every held-out reward, then fidelity if measured."""
    first = next(iter(summary.values()))
    panels = [(f"held-out: {name}", name) for name in first["heldout"]]
    if first["fidelity"]["mean"] is not None:
        panels.append(("prompt fidelity", "fidelity"))
    return panels


def _stat(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return entry["fidelity"] if key == "fidelity" else entry["heldout"][key]


def pareto_plot(summary: dict[str, dict[str, Any]], target: str, path: str | Path) -> Path | None:
    """Target reward (x) against each held-out reward and fidelity (y), one panel each.

    Error bars are the std over seeds; the dashed line joins the Pareto
    front. Points are labelled by method name, the legend gives the full
    settings. Needs matplotlib (``pip install nulltta[bench]``); without it,
    prints a message and returns None.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the Pareto plot (pip install nulltta[bench])")
        return None
    panels = _panels(summary)
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.8), squeeze=False)
    for ax, (title, key) in zip(axes[0], panels, strict=True):
        points = {}
        for label, entry in summary.items():
            x, y = entry["target"], _stat(entry, key)
            if x["mean"] is None or y["mean"] is None:
                continue
            points[label] = (x["mean"], y["mean"])
            ax.errorbar(
                x["mean"], y["mean"], xerr=x["std"], yerr=y["std"], fmt="o", capsize=3, label=label
            )
            short = label.split(":")[0]
            ax.annotate(short, points[label], textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front(points)
        ax.plot([points[k][0] for k in front], [points[k][1] for k in front], "k--", lw=0.8)
        ax.set_xlabel(f"target: {target}")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8)
    fig.suptitle("Target vs held-out rewards (mean ± std over seeds; dashed: Pareto front)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def image_grids(out_dir: str | Path, rows: list[dict[str, Any]], cell: int = 96) -> list[Path]:
    """One PNG per prompt in ``out_dir/grids``: a row per seed, a column per method."""
    out = Path(out_dir)
    (out / "grids").mkdir(exist_ok=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    paths = []
    for index in sorted({r["prompt_index"] for r in rows}):
        mine = [r for r in rows if r["prompt_index"] == index]
        seeds = sorted({r["seed"] for r in mine})
        first = Image.open(out / mine[0]["image"])
        height = max(1, round(cell * first.height / first.width))
        header, gap, left = 28, 4, 48
        width = left + len(methods) * (cell + gap)
        canvas = Image.new("RGB", (width, header + len(seeds) * (height + gap)), "white")
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 2), mine[0]["prompt"], fill="black")
        for column, label in enumerate(methods):
            draw.text((left + column * (cell + gap), 15), label[:16], fill="black")
        for row_number, seed in enumerate(seeds):
            y = header + row_number * (height + gap)
            draw.text((4, y + height // 2), f"s{seed}", fill="black")
            for column, label in enumerate(methods):
                match = [r for r in mine if r["seed"] == seed and r["method"] == label]
                if not match:
                    continue
                image = Image.open(out / match[0]["image"]).convert("RGB")
                image = image.resize((cell, height), Image.NEAREST)
                canvas.paste(image, (left + column * (cell + gap), y))
        path = out / "grids" / f"p{index:03d}.png"
        canvas.save(path)
        paths.append(path)
    return paths
