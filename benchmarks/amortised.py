"""Amortised alignment: does a fitted phi' trajectory help new seeds for free?

Fits Null-TTA once per prompt (seed 0), then compares, on new seeds, plain CFG
samples with samples that replay the fitted phi' (no optimisation, no
candidates: the cost of a plain sample). Prints mean target and held-out
rewards side by side.

    python benchmarks/amortised.py --prompts 4 --seeds 8
"""

from __future__ import annotations

import argparse
import statistics

import torch

from nulltta import NullTextAligner
from nulltta.rewards import get_reward
from nulltta.shapes.world import all_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    heldout = get_reward("shapes-preference-heldout")
    prompts = all_prompts()[:: max(1, len(all_prompts()) // args.prompts)][: args.prompts]
    rows = {"plain": ([], []), "amortised": ([], []), "fitted (seed 0)": ([], [])}
    for prompt in prompts:
        aligner = NullTextAligner(num_inference_steps=args.steps, seed=0).fit(prompt)
        rows["fitted (seed 0)"][0].append(aligner.reward_)
        rows["fitted (seed 0)"][1].append(float(heldout(_tensor(aligner.image_), prompt)))
        for name, images in (
            ("plain", aligner.sample_baseline(n_images=args.seeds, seed=1, output_type="pt")),
            ("amortised", aligner.generate(args.seeds, seed=1, reoptimize=False, output_type="pt")),
        ):
            with torch.no_grad():
                rows[name][0].extend(aligner.reward_fn_(images, prompt).tolist())
                rows[name][1].extend(heldout(images, prompt).tolist())
        print(f"{prompt}: done", flush=True)
    print(f"\n{len(prompts)} prompts x {args.seeds} new seeds, {args.steps} steps")
    print(f"{'samples':18s} {'target':>16s} {'held-out':>16s}")
    for name, (target, held) in rows.items():
        print(f"{name:18s} {_fmt(target):>16s} {_fmt(held):>16s}")


def _tensor(image):
    from nulltta.aligner import to_tensor

    return to_tensor(image)


def _fmt(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


if __name__ == "__main__":
    main()
