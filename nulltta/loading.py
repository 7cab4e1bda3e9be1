"""Loading diffusion pipelines: the embedded model, a local folder, or a hub id."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

__all__ = ["EMBEDDED_MODEL", "embedded_model_available", "is_embedded", "load_pipeline"]

EMBEDDED_MODEL = "embedded"


def is_embedded(model: Any) -> bool:
    """Whether ``model`` names the embedded ShapesBench model, or is it, loaded."""
    if model is None or (isinstance(model, str) and model.lower() == EMBEDDED_MODEL):
        return True
    loaded_from = getattr(model, "name_or_path", None)
    if not isinstance(loaded_from, (str, Path)) or not embedded_model_available():
        return False
    from .shapes.model import embedded_model_path

    return Path(loaded_from).resolve() == embedded_model_path().resolve()


def embedded_model_available() -> bool:
    """Whether the package ships the embedded model (``nulltta.shapes``)."""
    if importlib.util.find_spec("nulltta.shapes.model") is None:
        return False
    from .shapes.model import embedded_model_path

    try:
        embedded_model_path()
    except FileNotFoundError:
        return False
    return True


def load_pipeline(
    model: Any = None,
    device: str | torch.device | None = None,
    torch_dtype: torch.dtype | None = None,
) -> Any:
    """Return a diffusers pipeline for ``model``.

    Parameters
    ----------
    model : pipeline object, str, Path or None
        A pipeline is returned unchanged (never moved or cast). ``None`` or
        ``"embedded"`` loads the model shipped with nulltta; a folder path or
        hub id is loaded with ``DiffusionPipeline.from_pretrained`` (a local
        folder works offline; a hub id needs the hub cache or a network).
    device : str or torch.device, optional
        Where to put a pipeline loaded here.
    torch_dtype : torch.dtype, optional
        Dtype for a pipeline loaded here.

    Raises
    ------
    FileNotFoundError
        When the embedded model is not installed or a path does not exist.

    """
    if not isinstance(model, (str, Path)) and model is not None:
        return model
    if is_embedded(model):
        if not embedded_model_available():
            raise FileNotFoundError(
                "the embedded model is not installed in this copy of nulltta; pass a model "
                "explicitly: a diffusers folder or hub id (e.g. "
                "'stable-diffusion-v1-5/stable-diffusion-v1-5'), or a pipeline object."
            )
        from .shapes.model import load_embedded_pipeline

        return load_embedded_pipeline(device or "cpu", torch_dtype or torch.float32)
    from diffusers import DiffusionPipeline

    path = Path(model)
    looks_local = path.is_absolute() or str(model).startswith((".", "~")) or path.exists()
    if looks_local and not path.exists():
        raise FileNotFoundError(f"no diffusers model folder at {path}; check the path")
    kwargs: dict[str, Any] = {}
    if torch_dtype is not None:
        kwargs["torch_dtype"] = torch_dtype
    if (path / "model_index.json").exists() and "safety_checker" in (
        path / "model_index.json"
    ).read_text():
        # The aligner never runs the safety checker; do not spend memory on it.
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    pipeline = DiffusionPipeline.from_pretrained(str(model), **kwargs)
    if device is not None:
        pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
