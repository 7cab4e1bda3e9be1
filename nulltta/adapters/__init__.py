"""Model-family adapters: one file per family, chosen from the pipeline's class."""

from __future__ import annotations

from typing import Any

from .base import Embeddings, PipelineAdapter, cat_embeddings, repeat_embeddings
from .stable_diffusion import StableDiffusionAdapter

__all__ = [
    "Embeddings",
    "PipelineAdapter",
    "StableDiffusionAdapter",
    "UnsupportedPipelineError",
    "cat_embeddings",
    "make_adapter",
    "repeat_embeddings",
    "supported_pipelines",
]


class UnsupportedPipelineError(TypeError):
    """The pipeline's family has no adapter, or cannot use null-text optimisation."""


def _adapter_table() -> list[tuple[str, type[PipelineAdapter]]]:
    # Pipeline class names, most specific first (SDXL subclasses nothing of SD,
    # but img2img variants subclass the text-to-image ones).
    return [
        ("StableDiffusionPipeline", StableDiffusionAdapter),
    ]


# Families whose models were distilled to run without CFG: there is no null branch.
_GUIDANCE_DISTILLED = {
    "FluxPipeline": "FLUX.1 [dev]/[schnell] are guidance-distilled: guidance is an input "
    "embedding, not a null-text branch, so there is no phi to optimise",
}


def supported_pipelines() -> list[str]:
    """Names of the pipeline classes that have an adapter."""
    return [name for name, _ in _adapter_table()]


def make_adapter(pipeline: Any, scheduler: Any = "ddim", eta: float = 1.0) -> PipelineAdapter:
    """Pick the adapter for ``pipeline`` by its class (or a base class).

    Raises
    ------
    UnsupportedPipelineError
        Listing the supported pipeline classes, or explaining why a
        guidance-distilled model cannot be aligned this way.

    """
    names = [cls.__name__ for cls in type(pipeline).__mro__]
    for name in names:
        if name in _GUIDANCE_DISTILLED:
            raise UnsupportedPipelineError(
                f"{type(pipeline).__name__} cannot be aligned: {_GUIDANCE_DISTILLED[name]}."
            )
    for class_name, adapter_class in _adapter_table():
        if class_name in names:
            return adapter_class(pipeline, scheduler=scheduler, eta=eta)
    raise UnsupportedPipelineError(
        f"{type(pipeline).__name__} is not supported; nulltta aligns "
        f"{', '.join(supported_pipelines())}. Load your model with one of these classes."
    )
