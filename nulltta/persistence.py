"""Saving and loading a fitted aligner: every fitted attribute, in readable files.

:func:`save_fitted` writes every fitted attribute of the estimator (each
instance attribute whose name ends in ``_`` and does not start with one),
except the live objects ``module_``, ``pipeline_``, ``reward_fn_`` and ``profile_``
(the model's profile, found again from the pipeline). Pipelines
and reward objects are not saved: pass them again to ``NullTextAligner.load``.
A folder holds:

- ``config.json``: the estimator's JSON-safe parameters (``"params"``) and one
  entry per fitted attribute (``"fitted"``) saying what it is and where it is;
  JSON-safe values (the prompt, the reward, the timesteps) are stored there
  directly;
- ``fitted.safetensors``: every tensor (``phi_``, ``latents_``, ...), keyed by
  the attribute's name (``"phis_.1"`` for item 1 of a list ``phis_``);
- one JSON file per :class:`~nulltta.history.History` (``history.json``) and
  one PNG per image (``image.png``; ``images/000.png``, ... for a list).

Supported values: tensors, JSON-safe values (None, bool, int, float, str,
and lists and str-keyed dicts of those), tuples, :class:`History`, PIL images,
dataclasses defined in ``nulltta`` (the :class:`~nulltta.config.AlignmentConfig`
in ``config_``), and lists, tuples and str-keyed dicts of any of these. Any
other fitted attribute makes :func:`save_fitted` raise ``TypeError``, so
nothing is dropped silently. Loaded values equal the saved ones exactly
(tensors keep their dtype and come back on the CPU; images keep their mode).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from .history import History

__all__ = ["FORMAT_VERSION", "LIVE_ATTRIBUTES", "fitted_attributes", "load_fitted", "save_fitted"]

#: Version of the folder layout written by :func:`save_fitted`.
FORMAT_VERSION = 2
#: Fitted attributes that hold live objects and are never saved.
LIVE_ATTRIBUTES = ("module_", "pipeline_", "reward_fn_", "profile_")
_TENSORS = "fitted.safetensors"


def fitted_attributes(estimator: Any) -> dict[str, Any]:
    """The estimator's fitted attributes that :func:`save_fitted` saves, by name.

    Parameters
    ----------
    estimator : object
        Usually a fitted ``NullTextAligner``.

    Returns
    -------
    dict of str to object
        Every instance attribute named ``something_`` (not ``_private``),
        except :data:`LIVE_ATTRIBUTES`, in definition order.

    """
    return {
        name: value
        for name, value in vars(estimator).items()
        if name.endswith("_") and not name.startswith("_") and name not in LIVE_ATTRIBUTES
    }


def _is_json(value: Any) -> bool:
    """Whether ``value`` survives a JSON round trip unchanged (no tuples, no subclasses)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if type(value) is list:
        return all(_is_json(item) for item in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


class _Writer:
    """Turns values into JSON descriptors, collecting tensors and writing files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.tensors: dict[str, torch.Tensor] = {}

    def _file(self, stem: str, suffix: str) -> str:
        relative = f"{stem}{suffix}"
        (self.folder / relative).parent.mkdir(parents=True, exist_ok=True)
        return relative

    def encode(self, value: Any, key: str, stem: str) -> dict[str, Any]:
        if isinstance(value, torch.Tensor):
            if key in self.tensors:
                raise ValueError(f"two fitted tensors would both be saved as {key!r}")
            self.tensors[key] = value.detach().cpu().contiguous().clone()
            return {"kind": "tensor", "key": key, "dtype": str(value.dtype)[6:]}
        if isinstance(value, History):
            relative = self._file(stem, ".json")
            value.to_json(self.folder / relative)
            return {"kind": "history", "file": relative}
        if isinstance(value, Image.Image):
            relative = self._file(stem, ".png")
            value.save(self.folder / relative)
            return {"kind": "image", "file": relative, "mode": value.mode}
        if _is_json(value):
            return {"kind": "json", "value": value}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            cls = type(value)
            fields = dataclasses.asdict(value)
            if cls.__module__.split(".")[0] != "nulltta" or not _is_json(fields):
                raise TypeError(
                    f"cannot save the fitted attribute {key} ({cls.__qualname__}): only "
                    "dataclasses defined in nulltta with JSON-safe fields are saved"
                )
            name = f"{cls.__module__}:{cls.__qualname__}"
            return {"kind": "dataclass", "class": name, "value": fields}
        if isinstance(value, (list, tuple)):
            items = [
                self.encode(item, f"{key}.{i}", f"{stem}/{i:03d}") for i, item in enumerate(value)
            ]
            return {"kind": "tuple" if isinstance(value, tuple) else "list", "items": items}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            items = {k: self.encode(v, f"{key}.{k}", f"{stem}/{k}") for k, v in value.items()}
            return {"kind": "dict", "items": items}
        raise TypeError(
            f"cannot save the fitted attribute {key} ({type(value).__name__}); "
            "nulltta.persistence saves tensors, JSON-safe values, History, PIL images, "
            "nulltta dataclasses and lists, tuples and dicts of those"
        )


def _decode(entry: dict[str, Any], folder: Path, tensors: dict[str, torch.Tensor]) -> Any:
    kind = entry["kind"]
    if kind == "json":
        return entry["value"]
    if kind == "tensor":
        return tensors[entry["key"]]
    if kind == "history":
        return History.from_json(folder / entry["file"])
    if kind == "image":
        with Image.open(folder / entry["file"]) as image:
            image.load()
            return image.convert(entry["mode"]) if image.mode != entry["mode"] else image.copy()
    if kind == "dataclass":
        module, _, name = entry["class"].partition(":")
        if module.split(".")[0] != "nulltta":
            raise ValueError(f"refusing to load {entry['class']}: not a nulltta class")
        return getattr(importlib.import_module(module), name)(**entry["value"])
    if kind in ("list", "tuple"):
        items = [_decode(item, folder, tensors) for item in entry["items"]]
        return tuple(items) if kind == "tuple" else items
    if kind == "dict":
        return {k: _decode(v, folder, tensors) for k, v in entry["items"].items()}
    raise ValueError(f"unknown kind {kind!r} in config.json; written by a newer nulltta?")


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    safe = {}
    for name, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        safe[name] = value
    return safe


def save_fitted(aligner: Any, path: str | Path) -> Path:
    """Write a fitted ``NullTextAligner`` to the folder ``path`` (created).

    Parameters
    ----------
    aligner : NullTextAligner
        Fitted; every attribute of :func:`fitted_attributes` is saved.
    path : str or Path
        The folder; files already there with the same names are replaced.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    TypeError
        When a fitted attribute holds a value of a type listed nowhere above.

    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    writer = _Writer(folder)
    fitted = {
        name: writer.encode(value, name, name[:-1])
        for name, value in fitted_attributes(aligner).items()
    }
    save_file(writer.tensors, folder / _TENSORS)
    state = {
        "format": FORMAT_VERSION,
        "params": _json_params(aligner.get_params(deep=False)),
        "fitted": fitted,
    }
    (folder / "config.json").write_text(json.dumps(state, indent=1))
    return folder


def _load_version_1(folder: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Fitted attributes of a folder written before format 2 (phi.safetensors)."""
    from .config import AlignmentConfig

    tensors = load_file(folder / "phi.safetensors")
    fitted: dict[str, Any] = {
        "phi_": tensors["phi"],
        "latents_": tensors["latents"],
        "prompt_": state["prompt"],
        "timesteps_": state["timesteps"],
        "resolution_": tuple(state["resolution"]),
        "reward_": state["reward"],
        "config_": AlignmentConfig(**state["config"]),
    }
    if (folder / "history.json").exists():
        fitted["history_"] = History.from_json(folder / "history.json")
    if (folder / "image.png").exists():
        fitted["image_"] = Image.open(folder / "image.png").convert("RGB")
    return fitted


def load_fitted(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a folder written by :func:`save_fitted`.

    Parameters
    ----------
    path : str or Path
        The folder.

    Returns
    -------
    params : dict
        The estimator's saved parameters (for ``NullTextAligner(**params)``).
    fitted : dict
        Every saved fitted attribute by name (``phi_``, ``latents_``,
        ``prompt_``, ...), equal to the saved values.

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no ``config.json``.
    ValueError
        When ``config.json`` names a format or class this version cannot read.

    """
    folder = Path(path)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} has no config.json; pass a folder written by save()")
    state = json.loads((folder / "config.json").read_text())
    version = state.get("format", 1)
    if version == 1:
        return dict(state["params"]), _load_version_1(folder, state)
    if version != FORMAT_VERSION:
        raise ValueError(f"{folder} has format {version}; this nulltta reads 1 and 2")
    tensors = load_file(folder / _TENSORS)
    fitted = {name: _decode(entry, folder, tensors) for name, entry in state["fitted"].items()}
    return dict(state["params"]), fitted
