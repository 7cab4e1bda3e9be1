"""The scorer card's numbers: classifier accuracy, and how the proxies agree with gold.

Used by ``python -m nulltta.shapes.train_scorers`` (after training, or alone
with ``--evaluate-only``), which writes them to ``metrics.json``.

The proxies are trained on pairs that share a prompt, so a Bradley-Terry
score is pinned down only within a prompt: each prompt keeps its own offset.
Agreement with gold is therefore reported both within a prompt (the
comparison the training identifies) and across prompts.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .gold import gold_from_geometry, gold_score
from .scorers import prompt_labels
from .train_preference import PairSet, _raw_scores, make_pairs, pairwise_accuracy
from .world import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    all_prompts,
    make_prompt,
    render_batch,
    sample_attributes,
    sample_batch,
)

__all__ = ["EVAL_PAIRS", "evaluate_classifier", "evaluate_proxies", "spearman"]

#: Size and data seed of the held-out evaluation pairs (noise-free labels).
EVAL_PAIRS = (5_000, 13)


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (no tie correction)."""
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


@torch.no_grad()
def evaluate_classifier(classifier: nn.Module, n: int = 2000, seed: int = 999) -> dict[str, float]:
    """Per-head and all-three accuracy on ``n`` fresh clean images (no augmentation)."""
    batch = sample_batch(n, seed)
    s, c, b = classifier(batch.images)
    right = torch.stack(
        [s.argmax(1) == batch.shape, c.argmax(1) == batch.color, b.argmax(1) == batch.background]
    )
    return {
        "classifier_all3_acc": float(right.all(0).float().mean()),
        "shape_acc": float(right[0].float().mean()),
        "color_acc": float(right[1].float().mean()),
        "background_acc": float(right[2].float().mean()),
    }


def _per_prompt_images(per_prompt: int, seed: int) -> tuple[Tensor, list[str]]:
    """``per_prompt`` clean images for each of the 96 prompts (base geometry)."""
    prompts = [p for p in all_prompts() for _ in range(per_prompt)]
    attrs = sample_attributes(len(prompts), np.random.default_rng(seed))
    labels = prompt_labels(prompts).numpy()
    attrs["shape"], attrs["color"], attrs["background"] = labels.T
    return torch.from_numpy(render_batch(**attrs)), prompts


def _one_attribute_changed(prompts: list[str]) -> list[str]:
    """Prompt ``i`` with attribute ``i % 3`` (shape, colour, background) moved to the next value."""
    out = []
    for i, (s, c, b) in enumerate(prompt_labels(prompts).tolist()):
        which = i % 3
        s = (s + 1) % len(SHAPES) if which == 0 else s
        c = (c + 1) % len(COLORS) if which == 1 else c
        b = (b + 1) % len(BACKGROUNDS) if which == 2 else b
        out.append(make_prompt(SHAPES[s], COLORS[c], BACKGROUNDS[b]))
    return out


def _split_accuracy(model: nn.Module, pairs: PairSet) -> dict[str, float]:
    a = _raw_scores(model, pairs.images_a, pairs.labels)
    b = _raw_scores(model, pairs.images_b, pairs.labels)
    right = torch.where(pairs.a_wins > 0, a > b, b > a).float()
    both = (pairs.gold_a > 0) & (pairs.gold_b > 0)
    return {
        "pairwise_accuracy_both_matched": float(right[both].mean()),
        "pairwise_accuracy_one_mismatched": float(right[~both].mean()),
        "pairs_both_matched": int(both.sum()),
    }


@torch.no_grad()
def evaluate_proxies(models: dict[str, nn.Module], per_prompt: int = 20, seed: int = 999) -> dict:
    """Pairwise accuracy on held-out pairs, and agreement with gold within and across prompts.

    Returns
    -------
    dict
        ``gold_validation_spearman``: gold from pixels against the gold formula
        on the generator's true geometry (clean images). Per proxy:
        ``pairwise_accuracy`` on :data:`EVAL_PAIRS` (noise-free labels), also
        split into pairs where both images match the prompt and pairs where
        one does not; on ``per_prompt`` fresh images of each of the 96 prompts,
        ``within_prompt_spearman`` (mean and min over prompts),
        ``within_prompt_slope`` (least-squares slope of the calibrated score
        on gold, mean/min/max over prompts), ``prompt_offset_sd`` (spread over
        prompts of the mean of score minus gold), ``spearman_across_prompts``,
        ``mae_to_gold``, and ``prefers_matching_prompt``: the fraction of
        images scored higher under their own prompt than under one with an
        attribute changed, with the mean difference.
    """
    eval_pairs = make_pairs(*EVAL_PAIRS, noisy=False)
    images, prompts = _per_prompt_images(per_prompt, seed)
    gold = gold_score(images, prompts)
    labels = prompt_labels(prompts)
    changed = prompt_labels(_one_attribute_changed(prompts))
    truth = sample_batch(2000, seed)
    out: dict = {
        "eval_pairs": {"pairs": EVAL_PAIRS[0], "data_seed": EVAL_PAIRS[1], "labels": "noise-free"},
        "gold_validation_spearman": spearman(
            gold_score(truth.images, truth.prompts),
            gold_from_geometry(truth.size, truth.cx, truth.cy),
        ),
        "agreement_images": {"per_prompt": per_prompt, "prompts": 96, "seed": seed},
    }
    for name, model in models.items():
        scores = model(images, labels)
        wrong = model(images, changed)
        groups = [slice(i, i + per_prompt) for i in range(0, len(prompts), per_prompt)]
        rho = [spearman(scores[g], gold[g]) for g in groups]
        slope = [float(np.polyfit(gold[g].numpy(), scores[g].numpy(), 1)[0]) for g in groups]
        offset = [float((scores[g] - gold[g]).mean()) for g in groups]
        out[name] = {
            "pairwise_accuracy": pairwise_accuracy(model, eval_pairs),
            **_split_accuracy(model, eval_pairs),
            "within_prompt_spearman": {"mean": float(np.mean(rho)), "min": float(np.min(rho))},
            "within_prompt_slope": {
                "mean": float(np.mean(slope)),
                "min": float(np.min(slope)),
                "max": float(np.max(slope)),
            },
            "prompt_offset_sd": float(np.std(offset)),
            "spearman_across_prompts": spearman(scores, gold),
            "mae_to_gold": float((scores - gold).abs().mean()),
            "prefers_matching_prompt": {
                "fraction": float((scores > wrong).float().mean()),
                "mean_difference": float((scores - wrong).mean()),
            },
        }
    return out
