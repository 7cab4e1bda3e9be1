"""Model-family adapters: one file per family, chosen from the pipeline's class."""

from __future__ import annotations

import re
from typing import Any

from .base import PipelineAdapter
from .embeddings import Embeddings, cat_embeddings, repeat_embeddings
from .sd3 import StableDiffusion3Adapter
from .sdxl import StableDiffusionXLAdapter
from .stable_diffusion import StableDiffusionAdapter

__all__ = [
    "Embeddings",
    "PipelineAdapter",
    "StableDiffusion3Adapter",
    "StableDiffusionAdapter",
    "StableDiffusionXLAdapter",
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
        ("StableDiffusionXLPipeline", StableDiffusionXLAdapter),
        ("StableDiffusion3Pipeline", StableDiffusion3Adapter),
        ("StableDiffusionPipeline", StableDiffusionAdapter),
    ]


_FLUX_REASON = (
    "FLUX.1 [dev]/[schnell] are guidance-distilled: guidance is an input embedding, not a "
    "null-text branch, so there is no phi to optimise"
)
_FLUX2_REASON = (
    "FLUX.2 [dev] is guidance-distilled: guidance is an input embedding, not a null-text "
    "branch, so there is no phi to optimise"
)
_LCM_REASON = (
    "latent consistency models are guidance-distilled: the guidance scale is an input "
    "embedding (the UNet's time_cond_proj_dim) and sampling runs without a null-text branch, "
    "so there is no phi to optimise"
)
# Families whose models were distilled to run without CFG: there is no null branch.
_GUIDANCE_DISTILLED = {
    "FluxPipeline": _FLUX_REASON,
    "Flux2Pipeline": _FLUX2_REASON,
    "LatentConsistencyModelPipeline": _LCM_REASON,
    "LatentConsistencyModelImg2ImgPipeline": _LCM_REASON,
}
# Every FLUX.1 pipeline class (img2img, inpaint, fill, control, Kontext, ...): "Flux" + a letter.
_FLUX1_CLASS = re.compile(r"^Flux[A-Z]\w*Pipeline$")


def supported_pipelines() -> list[str]:
    """Names of the pipeline classes that have an adapter."""
    return [name for name, _ in _adapter_table()]


def _distilled_reason(pipeline: Any, names: list[str]) -> str | None:
    for name in names:
        if name in _GUIDANCE_DISTILLED:
            return _GUIDANCE_DISTILLED[name]
        if _FLUX1_CLASS.match(name):
            return _FLUX_REASON
    unet_config = getattr(getattr(pipeline, "unet", None), "config", None)
    if unet_config is not None and unet_config.get("time_cond_proj_dim") is not None:
        return _LCM_REASON
    return None


def make_adapter(
    pipeline: Any, scheduler: Any = "ddim", eta: float = 1.0, **options: Any
) -> PipelineAdapter:
    """Pick the adapter for ``pipeline`` by its class (or a base class).

    ``options`` go to the adapter (e.g. ``gradient_checkpointing``, or
    ``max_sequence_length`` for SD3).

    Raises
    ------
    UnsupportedPipelineError
        Listing the supported pipeline classes, or explaining why a
        guidance-distilled model cannot be aligned this way.

    """
    names = [cls.__name__ for cls in type(pipeline).__mro__]
    reason = _distilled_reason(pipeline, names)
    if reason is not None:
        raise UnsupportedPipelineError(f"{type(pipeline).__name__} cannot be aligned: {reason}.")
    for class_name, adapter_class in _adapter_table():
        if class_name in names:
            return adapter_class(pipeline, scheduler=scheduler, eta=eta, **options)
    raise UnsupportedPipelineError(
        f"{type(pipeline).__name__} is not supported; nulltta aligns "
        f"{', '.join(supported_pipelines())}. Load your model with one of these classes."
    )
