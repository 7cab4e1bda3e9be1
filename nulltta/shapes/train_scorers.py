"""Train the ShapesBench scorers: the two proxy preference rewards and (optionally) the classifier.

    python -m nulltta.shapes.train_scorers                 # the two proxies
    python -m nulltta.shapes.train_scorers --classifier    # also the classifier

Writes ``preference`` and ``preference_heldout`` (and with ``--classifier``
also ``classifier`` and ``reference_stats``) safetensors into ``--out``, plus
``metrics.json``. The proxies are trained with a Bradley-Terry loss on fixed
sets of simulated pairwise choices labelled by the gold reward
(:mod:`nulltta.shapes.train_preference`): 20,000 pairs (data seed 11,
training seed 21) for the target and 30,000 (data seed 12, training seed 22)
for the held-out proxy; both are scored on 5,000 fresh pairs (data seed 13)
with noise-free labels. Light augmentation (pixel noise, small colour shifts,
slight blur) keeps every scorer calibrated on images decoded by a diffusion
model, which are never pixel-perfect. The gold reward reads the classifier,
so the proxies are trained after it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from .preference import CalibratedPreference, CoordConvPreference, TwoTowerPreference
from .scorer_metrics import evaluate_classifier, evaluate_proxies
from .scorers import ShapeClassifier, _load_cached, gaussian_stats, load_scorer
from .train_preference import calibrate, make_pairs, pairwise_accuracy, train_bradley_terry
from .world import sample_batch

__all__ = [
    "PROXIES",
    "augment",
    "main",
    "train_classifier",
    "train_proxy",
]

#: ``name: (network class, pairs, data seed, training seed)`` as the design fixes them.
PROXIES: dict[str, tuple[type[CalibratedPreference], int, int, int]] = {
    "preference": (TwoTowerPreference, 20_000, 11, 21),
    "preference_heldout": (CoordConvPreference, 30_000, 12, 22),
}


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


def train_proxy(name: str, epochs: int, batch_size: int = 128) -> tuple[nn.Module, dict]:
    """Train one proxy on its fixed pairs (see :data:`PROXIES`) and calibrate it to gold.

    Returns
    -------
    model, dict
        The calibrated network and its training numbers (pairs, seeds,
        calibration, accuracy on its own noisy training labels, seconds).
    """
    arch, n_pairs, data_seed, train_seed = PROXIES[name]
    start = time.time()
    pairs = make_pairs(n_pairs, data_seed)
    data_seconds = time.time() - start
    torch.manual_seed(train_seed)
    model = arch()
    train_bradley_terry(model, pairs, epochs, batch_size, train_seed, augment=augment)
    info = {
        "pairs": n_pairs,
        "data_seed": data_seed,
        "training_seed": train_seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "pairs_seconds": data_seconds,
        "train_accuracy_noisy_labels": pairwise_accuracy(model, pairs),
        "calibration": calibrate(model, pairs),
    }
    info["seconds"] = time.time() - start
    return model, info


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


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "assets" / "shapes-scorers",
    )
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="also retrain the classifier and its reference statistics (before the proxies)",
    )
    parser.add_argument("--classifier-steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=64, help="classifier batch size")
    parser.add_argument("--epochs", type=int, default=12, help="target proxy epochs")
    parser.add_argument("--heldout-epochs", type=int, default=8, help="held-out proxy epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="train nothing: re-measure the scorers in --out and update metrics.json "
        "(its training entries are kept)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.evaluate_only:
        return _evaluate_only(args.out)
    start = time.time()
    load_start = os.getloadavg()
    metrics: dict = {}
    if args.classifier:
        classifier = train_classifier(args.classifier_steps, args.batch_size, seed=1)
        _save(classifier, args.out / "classifier.safetensors")
        save_file(
            reference_stats(classifier, 10000, seed=50_000),
            args.out / "reference_stats.safetensors",
        )
        metrics["classifier_steps"] = args.classifier_steps
        _load_cached.cache_clear()
    metrics["classifier_retrained"] = args.classifier
    models = {}
    for name, epochs in (("preference", args.epochs), ("preference_heldout", args.heldout_epochs)):
        model, info = train_proxy(name, epochs)
        _save(model, args.out / f"{name}.safetensors")
        models[name] = model
        metrics[f"{name}_training"] = info
    _load_cached.cache_clear()  # reload what was just written
    classifier_folder = args.out if args.classifier else None  # the gold reads the shipped one
    metrics.update(evaluate_classifier(load_scorer("classifier", classifier_folder)))
    metrics.update(evaluate_proxies({n: load_scorer(n, args.out) for n in PROXIES}))
    metrics["train_seconds"] = time.time() - start
    metrics["threads"] = args.threads
    metrics["load_average_at_start"] = load_start
    metrics["load_average_at_end"] = os.getloadavg()
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return metrics


def _evaluate_only(out: Path) -> dict:
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    start, load_start = time.time(), os.getloadavg()
    metrics.update(evaluate_classifier(load_scorer("classifier")))
    for stale in ("preference", "preference_heldout"):
        metrics.pop(stale, None)
    metrics.update(evaluate_proxies({n: load_scorer(n, out) for n in PROXIES}))
    metrics["evaluation"] = {
        "seconds": time.time() - start,
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
    }
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    return metrics


if __name__ == "__main__":
    main()
