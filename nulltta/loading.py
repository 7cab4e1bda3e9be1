"""Loading diffusion pipelines: the embedded model, a local folder, or a hub id."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "EMBEDDED_MODEL",
    "CorruptWeightsError",
    "check_weights_files",
    "embedded_model_available",
    "is_embedded",
    "load_pipeline",
]

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


class CorruptWeightsError(ValueError):
    """A weights file of a model folder is truncated or not what its name says."""


_TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def _safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete safetensors file, or None when it is one.

    A safetensors file is an 8-byte little-endian header length N, N bytes
    of JSON naming every tensor's byte range, then exactly the bytes those
    ranges cover; reading the header and the file size is enough to find a
    cut-short download without loading a tensor.
    """
    size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            return f"it has {size} bytes, fewer than the 8 of a header length"
        header_size = int.from_bytes(prefix, "little")
        if header_size > size - 8:
            return f"its header says {header_size} bytes of metadata but the file has {size}"
        try:
            header = json.loads(file.read(header_size))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            return "its header is not JSON"
    if not isinstance(header, dict):
        return "its header is not a JSON object"
    try:
        tensors = [entry for key, entry in header.items() if key != "__metadata__"]
        ends = [int(entry["data_offsets"][1]) for entry in tensors]
    except (KeyError, IndexError, TypeError, ValueError):
        return "its header does not list the tensors' byte ranges"
    expected = 8 + header_size + max(ends, default=0)
    if expected != size:
        return f"its header describes {expected} bytes but the file has {size}"
    return None


def _torch_file_problem(path: Path) -> str | None:
    """Why a torch checkpoint in zip format is broken, or None (legacy pickles are not checked)."""
    with path.open("rb") as file:
        if file.read(2) != b"PK":  # not the zip format torch.save has written since 1.6
            return None
    if not zipfile.is_zipfile(path):  # the zip index sits at the end: a cut file has none
        return "it starts as a zip archive (torch.save's format) but has no zip index at its end"
    return None


def check_weights_files(folder: str | Path) -> None:
    """Raise :class:`CorruptWeightsError` naming the first truncated weights file of ``folder``.

    Checks the safetensors files (and zip-format torch checkpoints where a
    component has no safetensors file) of every component folder of a
    diffusers model folder, by their headers and sizes only: no tensor is read.

    Parameters
    ----------
    folder : str or Path
        A diffusers model folder (with ``model_index.json``), or a single component folder.

    Raises
    ------
    CorruptWeightsError
        Naming the file and what is wrong with it.

    """
    folder = Path(folder)
    index = folder / "model_index.json"
    components = [folder]
    if index.is_file():
        try:
            names = [key for key in json.loads(index.read_text()) if not key.startswith("_")]
        except ValueError:
            raise CorruptWeightsError(f"{index} is not JSON; restore the model folder") from None
        components = [folder / name for name in names if (folder / name).is_dir()]
    for component in components:
        safetensors = sorted(component.glob("*.safetensors"))
        torch_files = (
            []
            if safetensors
            else sorted(p for p in component.iterdir() if p.suffix in _TORCH_SUFFIXES)
        )
        for path in safetensors + torch_files:
            check = _safetensors_problem if path.suffix == ".safetensors" else _torch_file_problem
            problem = check(path)
            if problem is not None:
                raise CorruptWeightsError(
                    f"weights file {path} is corrupt or truncated: {problem}. It was probably cut "
                    "short by an interrupted download or copy; download or copy it again."
                )


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
    CorruptWeightsError
        When a weights file of a local folder (or of the embedded model) is
        truncated or corrupt; the message names the file.

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
        from .shapes.model import embedded_model_path, load_embedded_pipeline

        check_weights_files(embedded_model_path())
        return load_embedded_pipeline(device or "cpu", torch_dtype or torch.float32)
    from diffusers import DiffusionPipeline

    path = Path(model)
    looks_local = path.is_absolute() or str(model).startswith((".", "~")) or path.exists()
    if looks_local and not path.exists():
        raise FileNotFoundError(f"no diffusers model folder at {path}; check the path")
    if path.is_dir():
        check_weights_files(path)
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
