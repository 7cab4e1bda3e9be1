"""Simulated pairwise choices labelled by the gold reward, and Bradley-Terry training.

A pair is a prompt and two images (``docs/concepts/shapesbench.md``, "The
proxy rewards"). Each image is rendered, with probability 0.7, for the prompt
itself and otherwise for a prompt that differs in exactly one attribute
(shape, colour or background, chosen uniformly, then a different value
uniformly); geometry comes from the base distribution. A simulated rater
picks image A with probability ``sigmoid((gold_A - gold_B) / 0.05)``, or,
for noise-free evaluation pairs, whenever ``gold_A > gold_B``. Pairs with
equal gold (both mismatched) are dropped. Everything is drawn from one data
seed, so a pair set is fixed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gold import gold_score
from .preference import CalibratedPreference
from .world import BACKGROUNDS, COLORS, SHAPES, make_prompt, render_batch, sample_attributes

__all__ = [
    "MATCH_PROB",
    "RATER_TEMPERATURE",
    "PairSet",
    "calibrate",
    "make_pairs",
    "pairwise_accuracy",
    "train_bradley_terry",
]

MATCH_PROB = 0.7
RATER_TEMPERATURE = 0.05
_SIZES = (len(SHAPES), len(COLORS), len(BACKGROUNDS))


@dataclass
class PairSet:
    """A fixed set of pairwise choices.

    Attributes
    ----------
    labels : Tensor
        ``(N, 3)`` int64 attribute indices of each pair's prompt.
    images_a, images_b : Tensor
        ``(N, 3, 32, 32)`` rendered images in ``[0, 1]``.
    gold_a, gold_b : Tensor
        ``(N,)`` gold reward of each image for the pair's prompt.
    a_wins : Tensor
        ``(N,)`` float, 1 where the rater chose image A.
    """

    labels: Tensor
    images_a: Tensor
    images_b: Tensor
    gold_a: Tensor
    gold_b: Tensor
    a_wins: Tensor

    def __len__(self) -> int:
        return len(self.a_wins)


def _image_attributes(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Base geometry, and the pair prompt's attributes or (p = 0.3) one attribute changed."""
    n = len(labels)
    attrs = sample_attributes(n, rng)
    values = labels.copy()
    mismatch = rng.random(n) >= MATCH_PROB
    which = rng.integers(0, 3, n)
    sizes = np.array(_SIZES)[which]
    step = rng.integers(1, sizes)  # adding 1..size-1 (mod size) gives a different value
    rows = np.flatnonzero(mismatch)
    values[rows, which[rows]] = (values[rows, which[rows]] + step[rows]) % sizes[rows]
    attrs["shape"], attrs["color"], attrs["background"] = values.T
    return attrs


def _gold(images: Tensor, prompts: list[str], chunk: int = 500) -> Tensor:
    return torch.cat(
        [
            gold_score(images[i : i + chunk], prompts[i : i + chunk])
            for i in range(0, len(prompts), chunk)
        ]
    )


def make_pairs(n: int, seed: int, noisy: bool = True, chunk: int = 2000) -> PairSet:
    """Draw ``n`` pairs with gold-labelled choices (equal-gold pairs dropped and redrawn).

    Parameters
    ----------
    n : int
        Number of pairs kept.
    seed : int
        Data seed; the same seed gives the same pairs.
    noisy : bool, default=True
        Rater noise ``P(A) = sigmoid((gold_A - gold_B) / 0.05)``; ``False`` gives
        noise-free labels (``gold_A > gold_B``).
    chunk : int, default=2000
        Pairs drawn at a time.

    Returns
    -------
    PairSet
    """
    rng = np.random.default_rng(seed)
    parts: list[dict[str, Tensor]] = []
    kept = 0
    while kept < n:
        labels = np.stack([rng.integers(0, size, chunk) for size in _SIZES], axis=1).astype(
            np.int64
        )
        prompts = [make_prompt(SHAPES[s], COLORS[c], BACKGROUNDS[b]) for s, c, b in labels]
        images = [torch.from_numpy(render_batch(**_image_attributes(labels, rng))) for _ in "ab"]
        gold = [_gold(x, prompts) for x in images]
        u = torch.from_numpy(rng.random(chunk)).float()
        diff = gold[0] - gold[1]
        wins = (u < torch.sigmoid(diff / RATER_TEMPERATURE)) if noisy else diff > 0
        keep = diff != 0
        parts.append(
            {
                "labels": torch.from_numpy(labels)[keep],
                "images_a": images[0][keep],
                "images_b": images[1][keep],
                "gold_a": gold[0][keep],
                "gold_b": gold[1][keep],
                "a_wins": wins[keep].float(),
            }
        )
        kept += int(keep.sum())
    return PairSet(**{k: torch.cat([p[k] for p in parts])[:n] for k in parts[0]})


def _epochs(pairs: PairSet, epochs: int, batch_size: int, seed: int) -> Iterator[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(pairs), generator=gen)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


def train_bradley_terry(
    model: CalibratedPreference,
    pairs: PairSet,
    epochs: int,
    batch_size: int,
    seed: int,
    lr: float = 2e-3,
    augment=None,
) -> CalibratedPreference:
    """Fit ``model.raw`` with the Bradley-Terry loss ``-log sigmoid(+-(s_A - s_B))``.

    Parameters
    ----------
    model : network with ``raw(images, labels)``
        Trained in place (from its current weights).
    pairs : PairSet
        The fixed training choices.
    epochs, batch_size, seed : int
        Passes over the pairs, pairs per step, training seed (initialisation
        is the caller's; the seed drives the order and the augmentation).
    lr : float, default=2e-3
        Peak learning rate (one-cycle schedule, AdamW).
    augment : callable, optional
        ``augment(images, generator)`` applied to both images of every pair.

    Returns
    -------
    The model, in eval mode.
    """
    steps = epochs * (len(pairs) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    start = time.time()
    model.train()
    for step, idx in enumerate(_epochs(pairs, epochs, batch_size, seed)):
        images = torch.cat([pairs.images_a[idx], pairs.images_b[idx]])
        if augment is not None:
            images = augment(images, gen)
        labels = pairs.labels[idx].repeat(2, 1)
        score_a, score_b = model.raw(images, labels).chunk(2)
        loss = F.binary_cross_entropy_with_logits(score_a - score_b, pairs.a_wins[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            name = type(model).__name__
            print(f"{name} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)")
    return model.eval()


@torch.no_grad()
def _raw_scores(model: CalibratedPreference, images: Tensor, labels: Tensor) -> Tensor:
    return torch.cat(
        [model.raw(x, y) for x, y in zip(images.split(500), labels.split(500), strict=True)]
    )


@torch.no_grad()
def calibrate(model: CalibratedPreference, pairs: PairSet) -> dict[str, float]:
    """Fit ``gold ~ scale * raw + bias`` (least squares) on the pairs' images; set the buffers.

    The scale must come out positive, so the calibrated score ranks images
    exactly as the raw Bradley-Terry score does (and :func:`pairwise_accuracy`,
    computed on raw scores, is the calibrated reward's accuracy too).

    Returns
    -------
    dict
        ``scale``, ``bias`` and the Pearson correlation of raw scores with gold.

    Raises
    ------
    RuntimeError
        When the fitted scale is not positive.
    """
    images = torch.cat([pairs.images_a, pairs.images_b])
    labels = pairs.labels.repeat(2, 1)
    raw = _raw_scores(model, images, labels).double()
    gold = torch.cat([pairs.gold_a, pairs.gold_b]).double()
    design = torch.stack([raw, torch.ones_like(raw)], 1)
    scale, bias = torch.linalg.lstsq(design, gold[:, None]).solution[:, 0]
    if not scale > 0:
        raise RuntimeError(
            f"calibration scale {float(scale):.3g} <= 0: the raw scores rank the images against "
            "gold, so the proxy did not learn; train it longer or check the pairs."
        )
    model.scale.fill_(float(scale))
    model.bias.fill_(float(bias))
    pearson = float(torch.corrcoef(torch.stack([raw, gold]))[0, 1])
    return {"scale": float(scale), "bias": float(bias), "pearson_with_gold": pearson}


@torch.no_grad()
def pairwise_accuracy(model: nn.Module, pairs: PairSet) -> float:
    """Fraction of pairs where the model ranks the rater's choice higher (ties count half)."""
    a = _raw_scores(model, pairs.images_a, pairs.labels)
    b = _raw_scores(model, pairs.images_b, pairs.labels)
    right = torch.where(pairs.a_wins > 0, a > b, b > a).float()
    return float((right + 0.5 * (a == b).float()).mean())
