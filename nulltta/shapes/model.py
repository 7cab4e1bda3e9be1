"""Locate and load the embedded ShapesBench text-to-image model (no network)."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

__all__ = ["embedded_model_path", "load_embedded_pipeline", "load_world_model"]

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
            "or train one with `python -m nulltta.shapes.train_model --out DIR "
            "--prediction-type v_prediction`."
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
    return _load(embedded_model_path(), device, dtype)


def load_world_model(
    folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> StableDiffusionPipeline:
    """Load another model of the ShapesBench world, with the embedded model's profile.

    For a folder written by ``python -m nulltta.shapes.train_model`` (a
    retrained model, or a candidate for the next shipped one): the returned
    pipeline gets the embedded model's guidance, rewards, prompt check and
    fidelity in :class:`~nulltta.NullTextAligner` and ``nulltta bench``, as
    the shipped model does. A folder loaded any other way is an unknown
    Stable Diffusion model to nulltta.
    """
    from ..profiles import register_profile
    from .profile import embedded_profile

    pipe = _load(Path(folder), device, dtype)
    register_profile(lambda model: model is pipe, embedded_profile)
    return pipe


def _load(folder: Path, device: str | torch.device, dtype: torch.dtype) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(
        folder,
        dtype=dtype,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        local_files_only=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)
