"""ShapesBench numbers for plain sampling from a text-to-image model.

    python -m nulltta.shapes.evaluate                  # the embedded model
    python -m nulltta.shapes.evaluate --model DIR --n 200 --grid grid.png

Samples with diffusers' own ``StableDiffusionPipeline`` (DDIM, eta = 1, i.e.
ancestral), then reports, on ``--n`` three-attribute prompt/seed pairs,
prompt fidelity (all of shape, colour and background right, by the
ShapesBench classifier), the gold reward, both proxy preferences, the
manifold score and the Frechet distance to clean images (with the
clean-vs-clean FD of a same-size set as the floor); and, on ``--n-captions``
captions that carry a size word and a position phrase, how often each word
is obeyed, judged by the gold reward's segmentation
(:mod:`nulltta.shapes.obedience`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from PIL import Image
from torch import Tensor

from ..config import AlignmentConfig
from .gold import gold_score
from .obedience import obedience
from .profile import ALIGNMENT_DEFAULTS
from .rewards import (
    ShapesFD,
    ShapesManifold,
    ShapesPreference,
    ShapesPreferenceHeldout,
    fidelity_accuracy,
)
from .world import (
    POSITION_PHRASES,
    SIZE_WORDS,
    all_prompts,
    make_caption,
    parse_prompt,
    sample_batch,
)

__all__ = [
    "DEFAULT_CFG",
    "DEFAULT_STEPS",
    "benchmark_prompts",
    "caption_prompts",
    "evaluate",
    "evaluate_obedience",
    "main",
    "sample",
    "save_grid",
]

DEFAULT_CFG = ALIGNMENT_DEFAULTS["guidance_scale"]
#: The method's default schedule (100 steps), so plain fidelity is measured with
#: the sampler of ``NullTextAligner`` and the README's main job.
DEFAULT_STEPS = AlignmentConfig().num_inference_steps


def benchmark_prompts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` prompt/seed pairs: every prompt in turn (shuffled once), seeds ``0..n-1``."""
    order = np.random.default_rng(seed).permutation(len(all_prompts()))
    prompts = [all_prompts()[order[i % len(order)]] for i in range(n)]
    return prompts, list(range(n))


def caption_prompts(n: int, seed: int = 1) -> tuple[list[str], list[int]]:
    """``n`` captions with both a size word and a position phrase, and seeds ``10000 + i``.

    The ten size-position combinations cycle (so 200 captions carry each size
    word 100 times and each position phrase 40 times); the three attributes
    cycle through every prompt of the world in a shuffled order.
    """
    prompts, _ = benchmark_prompts(n, seed)
    captions = []
    for i, prompt in enumerate(prompts):
        size = SIZE_WORDS[i % len(SIZE_WORDS)]
        position = POSITION_PHRASES[(i // len(SIZE_WORDS)) % len(POSITION_PHRASES)]
        captions.append(make_caption(*parse_prompt(prompt), size=size, position=position))
    return captions, [10_000 + i for i in range(n)]


@torch.no_grad()
def sample(
    pipe: StableDiffusionPipeline,
    prompts: list[str],
    seeds: list[int],
    guidance_scale: float = DEFAULT_CFG,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 50,
) -> Tensor:
    """Plain CFG samples, one per prompt/seed pair, as ``(N, 3, H, W)`` in ``[0, 1]``.

    The pipeline's scheduler is replaced by DDIM with ``eta = 1`` (ancestral),
    the sampler of the method's default schedule.
    """
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(prompts), batch_size):
        gens = [torch.Generator().manual_seed(s) for s in seeds[i : i + batch_size]]
        images = pipe(
            prompts[i : i + batch_size],
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            eta=1.0,
            generator=gens,
            output_type="pt",
        ).images
        out.append(images.float().cpu())
    return torch.cat(out).clamp(0, 1)


def save_grid(images: Tensor, path: str | Path, columns: int = 8, scale: int = 4) -> Path:
    """Save images ``(N, 3, H, W)`` in [0, 1] as one PNG grid (nearest upscaling, 2 px gaps)."""
    n, _, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.ones((rows * (h * scale + 2), columns * (w * scale + 2), 3), dtype=np.uint8) * 255
    arrays = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for i, array in enumerate(arrays):
        r, c = divmod(i, columns)
        big = array.repeat(scale, 0).repeat(scale, 1)
        y, x = r * (h * scale + 2), c * (w * scale + 2)
        canvas[y : y + h * scale, x : x + w * scale] = big
    path = Path(path)
    Image.fromarray(canvas).save(path)
    return path


@torch.no_grad()
def evaluate(images: Tensor, prompts: list[str]) -> dict[str, float]:
    """ShapesBench metrics of generated images (and the FD floor of clean images).

    Returns
    -------
    dict
        ``fidelity`` (fraction with all three attributes right), ``gold``,
        ``preference`` and ``preference_heldout`` means, ``manifold`` mean,
        ``fd`` and ``fd_clean_floor`` (clean images of the same count).
    """
    fd = ShapesFD()
    fd.update(images)
    floor = ShapesFD()
    floor.update(sample_batch(len(images), seed=4242).images)
    return {
        "n": len(images),
        "fidelity": float(fidelity_accuracy(images, prompts).mean()),
        "gold": float(gold_score(images, prompts).mean()),
        "preference": float(ShapesPreference()(images, prompts).mean()),
        "preference_heldout": float(ShapesPreferenceHeldout()(images, prompts).mean()),
        "manifold": float(ShapesManifold()(images).mean()),
        "fd": float(fd.compute()),
        "fd_clean_floor": float(floor.compute()),
    }


@torch.no_grad()
def evaluate_obedience(images: Tensor, captions: list[str]) -> dict:
    """How often the captions' size words and position phrases are obeyed.

    Returns
    -------
    dict
        ``per_word``: ``{word: {"obeyed", "n", "rate"}}``; ``words_obeyed``:
        the fraction of all word judgments obeyed; ``captions_all_obeyed``: the
        fraction of captions whose every word is obeyed; ``fidelity``: the
        three attributes' fidelity on these samples.
    """
    judged = obedience(images, captions)
    per_word: dict[str, dict[str, float]] = {}
    for row in judged:
        for word, ok in row.items():
            entry = per_word.setdefault(word, {"obeyed": 0, "n": 0})
            entry["obeyed"] += int(ok)
            entry["n"] += 1
    for entry in per_word.values():
        entry["rate"] = entry["obeyed"] / entry["n"]
    total = sum(e["n"] for e in per_word.values())
    return {
        "n": len(captions),
        "per_word": dict(sorted(per_word.items())),
        "words_obeyed": sum(e["obeyed"] for e in per_word.values()) / max(1, total),
        "captions_all_obeyed": sum(all(r.values()) for r in judged) / max(1, len(judged)),
        "fidelity": float(fidelity_accuracy(images, captions).mean()),
    }


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; prints and returns the metrics."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="pipeline folder (default: embedded)"
    )
    parser.add_argument("--n", type=int, default=200, help="prompt/seed pairs")
    parser.add_argument(
        "--n-captions", type=int, default=200, help="captions with size/position words (0: skip)"
    )
    parser.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--grid", type=Path, default=Path("shapes_samples.png"))
    parser.add_argument(
        "--caption-grid", type=Path, default=None, help="also save 40 captioned samples here"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.model is None:
        from .model import load_embedded_pipeline

        pipe = load_embedded_pipeline()
    else:
        pipe = StableDiffusionPipeline.from_pretrained(
            args.model,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            local_files_only=True,
        )
    prompts, seeds = benchmark_prompts(args.n)
    start = time.time()
    images = sample(pipe, prompts, seeds, args.cfg, args.steps)
    metrics: dict = {
        "cfg": args.cfg,
        "steps": args.steps,
        "threads": args.threads,
        "sample_seconds": time.time() - start,
    }
    metrics.update(evaluate(images, prompts))
    save_grid(images[:64], args.grid)
    if args.n_captions > 0:
        captions, caption_seeds = caption_prompts(args.n_captions)
        start = time.time()
        captioned = sample(pipe, captions, caption_seeds, args.cfg, args.steps)
        metrics["obedience"] = evaluate_obedience(captioned, captions)
        metrics["obedience"]["sample_seconds"] = time.time() - start
        if args.caption_grid is not None:
            save_grid(captioned[:40], args.caption_grid, columns=10)
    print(json.dumps(metrics, indent=2))
    print(f"sample grid: {args.grid} (rows of 8; prompts in benchmark_prompts order)")
    if args.json is not None:
        args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


if __name__ == "__main__":
    main()
