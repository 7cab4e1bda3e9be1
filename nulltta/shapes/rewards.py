"""ShapesBench rewards: fidelity, two learned proxy preferences, gold, and a manifold score.

Registered by name when :mod:`nulltta.rewards` is imported:

- ``"shapes-fidelity"``: probability that the image shows the prompt's shape,
  colour and background (prompt-dependent);
- ``"shapes-preference"``: the target proxy, prompt-conditioned, trained on
  pairwise choices labelled by the gold reward (a PickScore analogue);
- ``"shapes-preference-heldout"``: another architecture on other pairs, for
  held-out evaluation (as HPSv2 and PickScore do for each other);
- ``"shapes-gold"``: the true preference measured from pixels
  (:mod:`nulltta.shapes.gold`), for evaluation only;
- ``"shapes-manifold"``: minus the per-image Mahalanobis distance of the
  classifier's features from clean data (low for off-manifold, hacked images).

:class:`ShapesFD` is the set-level Frechet distance in the classifier's features.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from nulltta.rewards.base import Reward, check_images
from nulltta.rewards.registry import register_reward

from . import gold as _gold  # noqa: F401  (registers shapes-gold)
from .scorers import (
    FEATURE_DIM,
    frechet_distance,
    load_reference_stats,
    load_scorer,
    prompt_labels,
    scorer_path,
)

__all__ = [
    "attribute_matches",
    "ShapesFD",
    "ShapesFidelity",
    "ShapesManifold",
    "ShapesPreference",
    "ShapesPreferenceHeldout",
    "fidelity_accuracy",
]


def _available(*names: str) -> tuple[bool, str]:
    paths = [scorer_path(name) for name in names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return False, f"missing {missing[0]}"
    return True, str(paths[0].parent)


@torch.no_grad()
def fidelity_accuracy(images: Tensor, prompts: list[str]) -> Tensor:
    """Per-image ``1.0`` when the classifier's argmax matches all three prompt attributes.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    prompts : list of str
        One prompt per image, inside the world's vocabulary.

    Returns
    -------
    Tensor
        ``(B,)`` float, 1 for a match and 0 otherwise (not differentiable).
    """
    return attribute_matches(images, prompts).all(0).float()


@torch.no_grad()
def attribute_matches(images: Tensor, prompts: list[str]) -> Tensor:
    """``(3, B)`` booleans: the classifier's argmax is the prompt's shape, colour, background.

    Parameters
    ----------
    images : Tensor
        ``(B, 3, H, W)`` in ``[0, 1]``.
    prompts : list of str
        One prompt (or caption) per image, inside the world's vocabulary.
    """
    check_images(images)
    classifier = load_scorer("classifier").to(images.device)
    labels = prompt_labels(prompts, images.device)
    logits = classifier(images.float())
    return torch.stack([lg.argmax(1) == labels[:, i] for i, lg in enumerate(logits)])


class ShapesFidelity(Reward):
    """Joint probability that an image shows its prompt's shape, colour and background.

    ``p(shape) * p(colour) * p(background)`` under the ShapesBench classifier,
    in ``[0, 1]``, differentiable. With ``log=True`` returns the sum of the
    three log-probabilities instead (better gradients far from the prompt).

    Parameters
    ----------
    log : bool, default=False
        Return log-probabilities.
    folder : path, optional
        Scorer weights folder (defaults to the shipped one).
    """

    requires_prompts = True

    def __init__(self, log: bool = False, folder: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.log = log
        self.folder = folder
        self.classifier = load_scorer("classifier", folder)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Joint (log-)probability of the prompt's attributes, ``(B,)``."""
        assert prompts is not None
        labels = prompt_labels(prompts, images.device)
        logits = self.classifier(images)
        logp = sum(
            lg.log_softmax(1).gather(1, labels[:, i : i + 1]).squeeze(1)
            for i, lg in enumerate(logits)
        )
        return logp if self.log else logp.exp()


class ShapesPreference(Reward):
    """The target proxy of the gold ShapesBench preference (the alignment target).

    Prompt-conditioned (:class:`~nulltta.shapes.preference.TwoTowerPreference`),
    trained with a Bradley-Terry loss on 20,000 simulated choices labelled by
    the gold reward and mapped to gold's ``[0, 1]`` scale by an affine fit.
    Differentiable.
    """

    requires_prompts = True
    _weights = "preference"

    def __init__(self, folder: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.net = load_scorer(self._weights, folder)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Calibrated proxy score of each image for its prompt, ``(B,)``."""
        assert prompts is not None
        return self.net(images, prompt_labels(prompts, images.device))


class ShapesPreferenceHeldout(ShapesPreference):
    """The held-out proxy (:class:`~nulltta.shapes.preference.CoordConvPreference`).

    Other architecture, other pairs (30,000, data seed 12) and training seed.
    """

    _weights = "preference_heldout"


class ShapesManifold(Reward):
    """Minus the squared Mahalanobis distance of classifier features from clean data, over ``D``.

    About ``-1`` on clean images; much lower for images off the data manifold
    (reward hacking). Differentiable.
    """

    def __init__(self, folder: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.classifier = load_scorer("classifier", folder)
        mean, cov = load_reference_stats(folder)
        eye = torch.eye(cov.shape[0], dtype=cov.dtype)
        self.register_buffer("ref_mean", mean.float(), persistent=False)
        self.register_buffer(
            "ref_precision", torch.linalg.inv(cov + 1e-4 * eye).float(), persistent=False
        )

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """``-(f - mu)^T Sigma^-1 (f - mu) / D`` per image, ``(B,)``."""
        diff = self.classifier.features(images) - self.ref_mean
        return -torch.einsum("bi,ij,bj->b", diff, self.ref_precision, diff) / FEATURE_DIM


class ShapesFD(Metric):
    """Frechet distance between generated images and clean world images (lower is better).

    Features are the ShapesBench classifier's pooled features; the reference
    statistics come from 10,000 clean images. ``update(images)`` accumulates
    sum states (no lists, no graphs); ``compute()`` needs at least two images.
    The estimate is biased upwards for small sets: compare sets of equal size,
    and see the model card for the clean-vs-clean floor.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    feat_sum: Tensor
    outer_sum: Tensor
    count: Tensor

    def __init__(self, folder: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.classifier = load_scorer("classifier", folder)
        mean, cov = load_reference_stats(folder)
        self.register_buffer("ref_mean", mean, persistent=False)
        self.register_buffer("ref_cov", cov, persistent=False)
        d = FEATURE_DIM
        self.add_state("feat_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("outer_sum", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, images: Tensor) -> None:
        """Add a batch of ``(B, 3, H, W)`` images in ``[0, 1]``."""
        check_images(images)
        with torch.no_grad():
            feats = self.classifier.features(images.float()).double()
        self.feat_sum += feats.sum(0)
        self.outer_sum += feats.T @ feats
        self.count += feats.shape[0]

    def compute(self) -> Tensor:
        """Frechet distance of the accumulated images to the clean reference."""
        n = int(self.count)
        if n < 2:
            raise ValueError("ShapesFD needs at least two images; call update() first")
        mean = self.feat_sum / n
        cov = (self.outer_sum - n * torch.outer(mean, mean)) / (n - 1)
        return frechet_distance(mean, cov, self.ref_mean, self.ref_cov).float()


register_reward(
    "shapes-fidelity",
    "ShapesBench: probability the image shows the prompt's shape, colour and background",
    needs="shipped ShapesBench scorer weights",
    is_available=lambda: _available("classifier"),
)(ShapesFidelity)
register_reward(
    "shapes-preference",
    "ShapesBench: target proxy of the gold preference (prompt-conditioned, pairwise-trained)",
    needs="shipped ShapesBench scorer weights",
    is_available=lambda: _available("preference"),
)(ShapesPreference)
register_reward(
    "shapes-preference-heldout",
    "ShapesBench: held-out proxy of the gold preference (other architecture and pairs)",
    needs="shipped ShapesBench scorer weights",
    is_available=lambda: _available("preference_heldout"),
)(ShapesPreferenceHeldout)
register_reward(
    "shapes-manifold",
    "ShapesBench: minus Mahalanobis distance of classifier features from clean data",
    needs="shipped ShapesBench scorer weights",
    is_available=lambda: _available("classifier", "reference_stats"),
)(ShapesManifold)
