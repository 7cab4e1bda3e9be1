"""Which attribute a model misreads on captions that carry a size word and a position phrase.

    python benchmarks/caption_fidelity.py --model DIR [--model DIR ...] --json OUT

Samples the 200 obedience captions of ``python -m nulltta.shapes.evaluate``
(:func:`nulltta.shapes.evaluate.caption_prompts`, the same seeds, the
method's sampler) and reports, per model, how often the ShapesBench
classifier reads each of shape, colour and background as the caption says,
overall and per size word and per position phrase. ``--model embedded`` is the
shipped model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nulltta.shapes.evaluate import caption_prompts, sample
from nulltta.shapes.model import load_embedded_pipeline, load_world_model
from nulltta.shapes.rewards import attribute_matches
from nulltta.shapes.world import parse_caption

ATTRIBUTES = ("shape", "colour", "background")


def breakdown(hits: torch.Tensor, captions: list[str]) -> dict:
    """Hit rates per attribute, overall and per size word and position phrase."""
    parts = [parse_caption(c) for c in captions]

    def rates(mask: list[bool]) -> dict[str, float]:
        chosen = hits[:, torch.tensor(mask)]
        return {
            **{a: float(chosen[i].float().mean()) for i, a in enumerate(ATTRIBUTES)},
            "all_three": float(chosen.all(0).float().mean()),
            "n": int(chosen.shape[1]),
        }

    out = {"overall": rates([True] * len(captions))}
    for key in ("size", "position"):
        for word in sorted({getattr(p, key) for p in parts}):
            out[word] = rates([getattr(p, key) == word for p in parts])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--model", action="append", required=True, help="'embedded' or a folder")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    captions, seeds = caption_prompts(args.n)
    result = {}
    for model in args.model:
        pipe = load_embedded_pipeline() if model == "embedded" else load_world_model(model)
        images = sample(pipe, captions, seeds)
        result[model] = breakdown(attribute_matches(images, captions), captions)
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
