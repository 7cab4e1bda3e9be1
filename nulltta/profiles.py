"""Model profiles: what nulltta knows about a model beyond its family.

A :class:`ModelProfile` holds a model's own method defaults (guidance scale,
KL settings, learning rate), its default reward, the rewards worth reporting
beside the target, and its prompt check. The estimator, the command line and
the benchmark ask :func:`model_profile` for it and never branch on a model
themselves; a model that needs different settings registers a profile
(:func:`register_profile`), as the embedded model does in
``nulltta/shapes/profile.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelProfile", "family_profile", "model_profile", "register_profile"]


@dataclass(frozen=True)
class ModelProfile:
    """A model's own defaults and checks.

    Attributes
    ----------
    name : str
        Shown in reports.
    defaults : dict
        Values of the model-dependent settings
        (:data:`nulltta.config.MODEL_DEPENDENT_SETTINGS`) for this model; the
        ones missing fall back to the release's.
    reward : str
        The default target reward's name.
    heldout : tuple of str
        Rewards reported beside the target (never optimised).
    gold : str or None
        The reward that measures the true preference, where the model has one
        (the embedded model's ``shapes-gold``).
    check_prompt : callable or None
        Raises a ``ValueError`` naming the fix for a prompt the model cannot express.
    fidelity : callable or None
        ``(images, prompts) -> (B,)`` prompt fidelity, 1 for a match, 0 otherwise.
    set_metrics : dict
        Name -> ``images -> float`` metrics of a whole set of images (e.g. an FD).

    """

    name: str
    defaults: dict[str, Any] = field(default_factory=dict)
    reward: str = "pickscore"
    heldout: tuple[str, ...] = ()
    gold: str | None = None
    check_prompt: Callable[[str], Any] | None = None
    fidelity: Callable[..., Any] | None = None
    set_metrics: dict[str, Callable[..., float]] = field(default_factory=dict)

    def validate_prompt(self, prompt: str) -> None:
        """Raise if the model cannot express ``prompt`` (no-op without a check)."""
        if self.check_prompt is not None:
            self.check_prompt(prompt)


_REGISTERED: list[tuple[Callable[[Any], bool], Callable[[], ModelProfile]]] = []


def register_profile(matches: Callable[[Any], bool], profile: Callable[[], ModelProfile]) -> None:
    """Use ``profile()`` for every model for which ``matches(model)`` is true.

    Later registrations win. ``model`` is what the user passed (a pipeline,
    a name or a path) or the loaded pipeline.
    """
    _REGISTERED.insert(0, (matches, profile))


def family_profile(adapter: Any) -> ModelProfile:
    """The profile of a model nulltta knows only by its family: the family's CFG scale."""
    return ModelProfile(
        name=getattr(adapter, "family", "model"),
        defaults={"guidance_scale": adapter.default_guidance_scale},
    )


def model_profile(model: Any, adapter: Any = None, loaded: Any = None) -> ModelProfile:
    """The profile of ``model``: a registered one, the embedded model's, or its family's.

    Parameters
    ----------
    model : pipeline, str, Path or None
        As given to :class:`~nulltta.NullTextAligner`.
    adapter : PipelineAdapter, optional
        The family adapter, for the family's defaults; without it an unknown
        model gets the release's defaults.
    loaded : pipeline, optional
        The pipeline ``model`` was loaded into: a folder is recognised by the
        pipeline it gives (``name_or_path``), a name by itself.

    """
    from .loading import is_embedded

    candidates = [model] if loaded is None else [model, loaded]
    for candidate in candidates:
        for matches, profile in _REGISTERED:
            if matches(candidate):
                return profile()
    if any(is_embedded(candidate) for candidate in candidates):
        from .shapes.profile import embedded_profile

        return embedded_profile()
    if adapter is None:
        return ModelProfile(name="model")
    return family_profile(adapter)
