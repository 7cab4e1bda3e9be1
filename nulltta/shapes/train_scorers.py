"""Train the ShapesBench scorers on clean world images (a few minutes on 2 CPU cores).

    python -m nulltta.shapes.train_scorers --out nulltta/assets/shapes-scorers

Writes ``classifier``, ``preference``, ``preference_heldout`` and
``reference_stats`` safetensors plus ``metrics.json``. Light augmentation
(pixel noise, small colour shifts, slight blur) keeps the scorers calibrated
on images decoded by a diffusion model, which are never pixel-perfect.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from .scorers import (
    PreferenceNet,
    PreferenceNetCoord,
    ShapeClassifier,
    _load_cached,
    gaussian_stats,
    load_scorer,
)
from .world import sample_batch

__all__ = ["augment", "evaluate_scorers", "main", "train_classifier", "train_preference"]


def augment(images: Tensor, generator: torch.Generator) -> Tensor:
    """Random pixel noise, per-image colour shift and, for half the images, a slight blur."""
    b = images.shape[0]
    shift = 0.04 * torch.randn(b, 3, 1, 1, generator=generator)
    noise = (
        0.03
        * torch.rand(b, 1, 1, 1, generator=generator)
        * torch.randn(images.shape, generator=generator)
    )
    out = images + shift + noise
    kernel = torch.tensor([0.25, 0.5, 0.25])
    kernel = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    pick = (torch.rand(b, 1, 1, 1, generator=generator) < 0.5).float()
    return (pick * blurred + (1 - pick) * out).clamp(0, 1)


def _batches(steps: int, batch_size: int, seed: int):
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        batch = sample_batch(batch_size, rng)
        yield step, batch, augment(batch.images, gen)


def _optimise(model: nn.Module, steps: int, lr: float, losses, name: str) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    start = time.time()
    for step, loss in losses:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == steps - 1:
            print(
                f"{name} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)",
                flush=True,
            )


def train_classifier(steps: int, batch_size: int, seed: int, lr: float = 3e-3) -> ShapeClassifier:
    """Fit the three-head classifier with cross-entropy."""
    torch.manual_seed(seed)
    model = ShapeClassifier()

    def losses():
        for step, batch, images in _batches(steps, batch_size, seed):
            s, c, b = model(images)
            yield (
                step,
                (
                    F.cross_entropy(s, batch.shape)
                    + F.cross_entropy(c, batch.color)
                    + F.cross_entropy(b, batch.background)
                ),
            )

    _optimise(model, steps, lr, losses(), "classifier")
    return model.eval()


def train_preference(
    model: nn.Module, steps: int, batch_size: int, seed: int, lr: float = 2e-3
) -> nn.Module:
    """Fit a preference regressor to the ground truth with mean squared error."""
    torch.manual_seed(seed)

    def losses():
        for step, batch, images in _batches(steps, batch_size, seed):
            yield step, F.mse_loss(model(images), batch.preference())

    _optimise(model, steps, lr, losses(), type(model).__name__)
    return model.eval()


def _spearman(a: Tensor, b: Tensor) -> float:
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


@torch.no_grad()
def evaluate_scorers(
    classifier: nn.Module, preference: nn.Module, heldout: nn.Module, n: int = 2000, seed: int = 999
) -> dict[str, float]:
    """Accuracy and correlations on fresh clean images (no augmentation).

    Returns
    -------
    dict
        ``classifier_all3_acc`` (all three heads right), per-head accuracies,
        Spearman and Pearson correlations of each preference model with the
        ground truth and with each other.
    """
    batch = sample_batch(n, seed)
    s, c, b = classifier(batch.images)
    right = torch.stack(
        [s.argmax(1) == batch.shape, c.argmax(1) == batch.color, b.argmax(1) == batch.background]
    )
    truth = batch.preference()
    pa, pb = preference(batch.images), heldout(batch.images)
    return {
        "classifier_all3_acc": float(right.all(0).float().mean()),
        "shape_acc": float(right[0].float().mean()),
        "color_acc": float(right[1].float().mean()),
        "background_acc": float(right[2].float().mean()),
        "preference_spearman": _spearman(pa, truth),
        "preference_pearson": float(torch.corrcoef(torch.stack([pa, truth]))[0, 1]),
        "heldout_spearman": _spearman(pb, truth),
        "heldout_pearson": float(torch.corrcoef(torch.stack([pb, truth]))[0, 1]),
        "preference_vs_heldout_spearman": _spearman(pa, pb),
    }


@torch.no_grad()
def reference_stats(classifier: ShapeClassifier, n: int, seed: int) -> dict[str, Tensor]:
    """Gaussian statistics of classifier features over ``n`` clean images."""
    feats = torch.cat(
        [classifier.features(sample_batch(500, seed + i).images) for i in range(max(1, n // 500))]
    )
    mean, cov = gaussian_stats(feats)
    return {"mean": mean.contiguous(), "cov": cov.contiguous()}


def _save(model: nn.Module, path: Path) -> None:
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "assets" / "shapes-scorers",
    )
    parser.add_argument("--classifier-steps", type=int, default=1200)
    parser.add_argument("--preference-steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--only",
        choices=["classifier", "preference", "preference_heldout"],
        nargs="+",
        default=None,
        help="train only these networks (the others must exist for the metrics)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()

    def want(name: str) -> bool:
        return args.only is None or name in args.only

    if want("classifier"):
        classifier = train_classifier(args.classifier_steps, args.batch_size, seed=1)
        _save(classifier, args.out / "classifier.safetensors")
        save_file(
            reference_stats(classifier, 10000, seed=50_000),
            args.out / "reference_stats.safetensors",
        )
    if want("preference"):
        _save(
            train_preference(PreferenceNet(), args.preference_steps, args.batch_size, seed=2),
            args.out / "preference.safetensors",
        )
    if want("preference_heldout"):
        _save(
            train_preference(PreferenceNetCoord(), args.preference_steps, args.batch_size, seed=3),
            args.out / "preference_heldout.safetensors",
        )
    _load_cached.cache_clear()  # reload what was just written
    metrics = evaluate_scorers(
        *(load_scorer(n, args.out) for n in ("classifier", "preference", "preference_heldout"))
    )
    metrics["train_seconds"] = time.time() - start
    metrics["classifier_steps"] = args.classifier_steps
    metrics["preference_steps"] = args.preference_steps
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
