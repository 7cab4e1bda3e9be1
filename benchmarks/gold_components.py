"""Where each method's gold comes from: the size and centring terms and the prompt gate.

    python benchmarks/gold_components.py benchmarks/results/shapesbench2

Reads a ShapesBench ``nulltta bench`` folder (``rows.jsonl`` and the saved
8-bit images), segments every image with the gold reward's own functions
(:mod:`nulltta.shapes.gold`) and writes ``gold_components.md`` and
``gold_components.json`` into it: per method, the mean measured size and
centre distance, the mean ``size_term`` and ``centring`` over the images that
pass the gate, the gate's pass rate, and gold (which is ``gate * (0.5 size_term
+ 0.5 centring)``, so the columns explain it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from PIL import Image


def components(folder: Path) -> dict[str, dict[str, float]]:
    """Per method: gate rate, size, centre distance, the two terms over passing images, gold."""
    from nulltta.images import to_tensor
    from nulltta.jsonl import read_rows
    from nulltta.shapes.gold import centring, gate, gold_score, measure, size_term

    by_method: dict[str, list[dict]] = {}
    for row in read_rows(folder / "rows.jsonl"):
        by_method.setdefault(row["method"], []).append(row)
    out: dict[str, dict[str, float]] = {}
    for method, rows in by_method.items():
        images = torch.cat([to_tensor(Image.open(folder / r["image"])) for r in rows])
        prompts = [r["prompt"] for r in rows]
        with torch.no_grad():
            geometry = measure(images, prompts)
            passed = gate(images, prompts, geometry.area) > 0
            size = size_term(geometry.size)
            centre = centring(geometry.cx, geometry.cy)
            gold = gold_score(images, prompts)
        distance = torch.hypot(geometry.cx - 0.5, geometry.cy - 0.5)
        kept = passed.nonzero().flatten()
        mean_kept = _masked_mean(kept)
        out[method] = {
            "images": len(rows),
            "gate_rate": float(passed.float().mean()),
            "size": mean_kept(geometry.size),
            "centre_distance": mean_kept(distance),
            "size_term": mean_kept(size),
            "centring": mean_kept(centre),
            "gold": float(gold.mean()),
            "gold_in_rows": statistics.fmean(r["heldout"]["shapes-gold"] for r in rows),
        }
    return out


def _masked_mean(kept: torch.Tensor):
    def mean(values: torch.Tensor) -> float:
        return float(values[kept].mean()) if len(kept) else float("nan")

    return mean


def markdown(table: dict[str, dict[str, float]], folder: Path) -> str:
    """The table, one line per method."""
    lines = [
        f"# Where gold comes from: {folder}",
        "",
        "Per method, over its images: the prompt gate's pass rate, and over the images that "
        "pass it the measured size (extent as a fraction of the side), the centre's distance "
        "from the image centre, `size_term` and `centring`; gold = gate x (0.5 size_term + "
        "0.5 centring), averaged over all images.",
        "",
        "| method | images | gate | size | centre distance | size_term | centring | gold |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, e in table.items():
        lines.append(
            f"| `{method}` | {e['images']} | {e['gate_rate']:.2f} | {e['size']:.3f} | "
            f"{e['centre_distance']:.3f} | {e['size_term']:.3f} | {e['centring']:.3f} | "
            f"{e['gold']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure and write the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a ShapesBench nulltta bench --out folder")
    args = parser.parse_args(argv)
    table = components(args.folder)
    (args.folder / "gold_components.json").write_text(json.dumps(table, indent=1) + "\n")
    text = markdown(table, args.folder)
    (args.folder / "gold_components.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
