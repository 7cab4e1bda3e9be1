"""The embedded model's profile: its method defaults, rewards and prompt check.

Everything nulltta does differently on the embedded ShapesBench model comes
from here (:func:`nulltta.profiles.model_profile` returns it), so the
estimator, the command line and the benchmark have no embedded-model branches.
"""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor

from ..profiles import ModelProfile
from .model import ALIGNMENT_DEFAULTS

__all__ = ["embedded_profile"]


def _fidelity(images: Tensor, prompts: list[str]) -> Tensor:
    from .rewards import fidelity_accuracy

    return fidelity_accuracy(images, prompts)


def _frechet_distance(images: Tensor) -> float:
    from .rewards import ShapesFD

    metric = ShapesFD()
    metric.update(images)
    return float(metric.compute())


def _check_prompt(prompt: str) -> None:
    from .world import check_prompt

    check_prompt(prompt)


@lru_cache(maxsize=1)
def embedded_profile() -> ModelProfile:
    """The embedded model's profile (see ``nulltta/assets/shapes-sd/README.md``)."""
    return ModelProfile(
        name="shapes-sd",
        defaults=dict(ALIGNMENT_DEFAULTS),
        reward="shapes-preference",
        heldout=("shapes-preference-heldout", "shapes-manifold"),
        gold="shapes-gold",
        check_prompt=_check_prompt,
        fidelity=_fidelity,
        set_metrics={"FD": _frechet_distance},
    )
