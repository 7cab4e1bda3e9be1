"""Saving and loading a fitted aligner: phi' as safetensors, settings as JSON.

A folder written by :func:`save_fitted` holds ``phi.safetensors`` (the phi'
trajectory ``(T, 1, ...)`` and the final latent), ``config.json`` (the
estimator's JSON-safe parameters, the prompt, timesteps, resolution, reward
and method settings), ``history.json`` and ``image.png``. Pipelines and
reward objects are not saved: pass them again to ``NullTextAligner.load``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image
from safetensors.torch import load_file, save_file

from .config import AlignmentConfig
from .history import History

__all__ = ["load_fitted", "save_fitted"]


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def save_fitted(aligner: Any, path: str | Path) -> Path:
    """Write a fitted ``NullTextAligner`` to the folder ``path`` (created)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {"phi": aligner.phi_.contiguous(), "latents": aligner.latents_.contiguous()},
        folder / "phi.safetensors",
    )
    params = {k: v for k, v in aligner.get_params(deep=False).items() if _json_safe(v)}
    state = {
        "params": params,
        "prompt": aligner.prompt_,
        "timesteps": aligner.timesteps_,
        "resolution": list(aligner.resolution_),
        "reward": aligner.reward_,
        "config": aligner.config_.to_dict(),
    }
    (folder / "config.json").write_text(json.dumps(state, indent=1))
    aligner.history_.to_json(folder / "history.json")
    aligner.image_.save(folder / "image.png")
    return folder


def load_fitted(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a folder written by :func:`save_fitted`.

    Returns
    -------
    params : dict
        The estimator's saved parameters (for ``NullTextAligner(**params)``).
    fitted : dict
        The fitted attributes (``phi_``, ``latents_``, ``prompt_``, ...).

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no ``config.json``.
    """
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} has no config.json; pass a folder written by save()")
    state = json.loads((folder / "config.json").read_text())
    tensors = load_file(folder / "phi.safetensors")
    history_file = folder / "history.json"
    fitted: dict[str, Any] = {
        "phi_": tensors["phi"],
        "latents_": tensors["latents"],
        "prompt_": state["prompt"],
        "timesteps_": state["timesteps"],
        "resolution_": tuple(state["resolution"]),
        "reward_": state["reward"],
        "config_": AlignmentConfig(**state["config"]),
        "history_": History.from_json(history_file) if history_file.exists() else History(),
    }
    if (folder / "image.png").exists():
        fitted["image_"] = Image.open(folder / "image.png").convert("RGB")
    return dict(state["params"]), fitted
