"""Locate and load the embedded ShapesBench text-to-image model (no network)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

__all__ = ["embedded_model_path", "load_embedded_pipeline"]

_ASSETS = Path(__file__).resolve().parent.parent / "assets"


def embedded_model_path() -> Path:
    """Folder of the embedded diffusers pipeline shipped inside the package.

    Returns
    -------
    Path
        ``nulltta/assets/shapes-sd``.

    Raises
    ------
    FileNotFoundError
        When the package was installed without its assets.
    """
    path = _ASSETS / "shapes-sd"
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(
            f"the embedded model is missing from {path}; reinstall nulltta with its package data "
            "or train one with `python -m nulltta.shapes.train_model --out DIR`."
        )
    return path


def load_embedded_pipeline(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusionPipeline:
    """Load the embedded model as a stock ``StableDiffusionPipeline``, offline.

    Parameters
    ----------
    device : str or torch.device, default="cpu"
        Where to put the components.
    dtype : torch.dtype, default=torch.float32
        Dtype of every component (weights are stored in fp32).

    Returns
    -------
    StableDiffusionPipeline
        32x32 images; prompts as in :func:`nulltta.shapes.world.make_prompt`,
        captions with size and position words as in
        :func:`nulltta.shapes.world.make_caption`.
    """
    pipe = StableDiffusionPipeline.from_pretrained(
        embedded_model_path(),
        dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
