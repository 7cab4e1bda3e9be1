"""Where reward weights come from, and one clear error when they are not there.

Order of resolution, first hit wins:

1. an explicit ``path`` (a file, or a folder holding the expected file): when
   given, nothing else is tried;
2. the folder named by the environment variable ``NULLTTA_WEIGHTS_DIR``, in
   any of the layouts ``$DIR/<file>``, ``$DIR/<org>/<repo>/<file>``,
   ``$DIR/<repo>/<file>`` or a Hugging Face cache ``$DIR/models--<org>--<repo>``;
3. the Hugging Face hub cache (``HF_HUB_CACHE``), read without any network
   access, so it works offline (``HF_HUB_OFFLINE=1``).

Nothing is ever downloaded here and nothing falls back to random weights:
when a file is missing, :class:`RewardWeightsNotFoundError` names the file
expected and every place looked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "WEIGHTS_DIR_ENV",
    "Lookup",
    "RewardWeightsError",
    "RewardWeightsNotFoundError",
    "find_pretrained_dir",
    "find_weights_file",
    "hub_cache_dir",
    "resolve_pretrained_dir",
    "resolve_weights_file",
]

#: Environment variable naming a folder of reward weights.
WEIGHTS_DIR_ENV = "NULLTTA_WEIGHTS_DIR"

#: Files a transformers model folder must hold (config plus one weights file).
HF_MODEL_FILES: tuple[tuple[str, ...], ...] = (
    ("config.json",),
    (
        "model.safetensors",
        "pytorch_model.bin",
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ),
)
#: Files a transformers tokenizer folder must hold (one of them).
HF_TOKENIZER_FILES: tuple[tuple[str, ...], ...] = (("tokenizer.json", "vocab.json", "vocab.txt"),)


class RewardWeightsError(RuntimeError):
    """A reward checkpoint is missing, unreadable or of the wrong model."""


class RewardWeightsNotFoundError(RewardWeightsError, FileNotFoundError):
    """Reward weights were not found; the message lists every place looked.

    Attributes
    ----------
    expected : str
        The file (or files) that were looked for.
    searched : tuple of str
        Every location tried, in order, with what was found there.
    """

    def __init__(self, what: str, expected: str, searched: Sequence[str], hint: str = "") -> None:
        self._args = (what, expected, tuple(searched), hint)
        self.expected = expected
        self.searched = tuple(searched)
        lines = [f"{what}: {expected} not found. Looked in:"]
        lines += [f"  - {place}" for place in self.searched]
        lines.append(
            f"Pass the path explicitly, set {WEIGHTS_DIR_ENV} to a folder holding it, "
            "or download it once into the Hugging Face cache (it is then used offline)."
        )
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:  # picklable despite the extra arguments
        return (type(self), self._args)


@dataclass(frozen=True)
class Lookup:
    """Result of a search for weights: where they are, and where we looked.

    Attributes
    ----------
    found : Path or None
        The file or folder found, or ``None``.
    searched : tuple of str
        One line per location tried.
    """

    found: Path | None
    searched: tuple[str, ...]


def hub_cache_dir() -> Path:
    """Return the Hugging Face hub cache folder in use (``HF_HUB_CACHE``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _as_tuple(repo_ids: str | Sequence[str] | None) -> tuple[str, ...]:
    if repo_ids is None:
        return ()
    if isinstance(repo_ids, str):
        return (repo_ids,)
    return tuple(repo_ids)


def _repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def _snapshots(cache_dir: Path, repo_id: str) -> Iterator[Path]:
    """Snapshot folders of ``repo_id`` in a hub cache: ``refs/main`` first."""
    repo_cache = cache_dir / _repo_folder(repo_id)
    snapshots = repo_cache / "snapshots"
    if not snapshots.is_dir():
        return
    main_ref = repo_cache / "refs" / "main"
    first: Path | None = None
    if main_ref.is_file():
        first = snapshots / main_ref.read_text().strip()
        if first.is_dir():
            yield first
    others = sorted(
        (p for p in snapshots.iterdir() if p.is_dir() and p != first),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    yield from others


def _has_files(folder: Path, groups: Sequence[Sequence[str]]) -> bool:
    return folder.is_dir() and all(any((folder / f).is_file() for f in group) for group in groups)


def _describe_groups(groups: Sequence[Sequence[str]]) -> str:
    return " and ".join(" or ".join(repr(f) for f in group) for group in groups)


def _env_dir() -> Path | None:
    value = os.environ.get(WEIGHTS_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _search(
    repo_ids: tuple[str, ...],
    path: str | os.PathLike[str] | None,
    accept: Callable[[Path], Path | None],
    need: str,
    include_root: bool,
) -> Lookup:
    """Try an explicit path, else ``$NULLTTA_WEIGHTS_DIR``, else the hub cache."""
    if path is not None:
        explicit = Path(path).expanduser()
        found = accept(explicit)
        if found is not None:
            return Lookup(found, (f"explicit path {explicit}",))
        if explicit.is_dir():
            reason = f"lacks {need}"
        else:
            reason = "is not a folder" if explicit.exists() else "does not exist"
        return Lookup(None, (f"explicit path {explicit} ({reason})",))

    searched: list[str] = []
    root = _env_dir()
    if root is None:
        searched.append(f"${WEIGHTS_DIR_ENV} (not set)")
    elif not root.is_dir():
        searched.append(f"${WEIGHTS_DIR_ENV}={root} (folder does not exist)")
    else:
        folders = [root] if include_root else []
        for repo in repo_ids:
            folders += [root / repo, root / repo.split("/")[-1]]
        folders += [snap for repo in repo_ids for snap in _snapshots(root, repo)]
        for folder in dict.fromkeys(folders):
            found = accept(folder)
            if found is not None:
                return Lookup(found, (*searched, f"${WEIGHTS_DIR_ENV} {folder}"))
        where = "/".join(repo_ids) or "its"
        searched.append(f"${WEIGHTS_DIR_ENV}={root} (no {need} there or in a {where} subfolder)")

    cache = hub_cache_dir()
    for repo in repo_ids:
        for snapshot in _snapshots(cache, repo):
            found = accept(snapshot)
            if found is not None:
                return Lookup(found, (*searched, f"hub cache {cache}"))
        state = "cached without it" if (cache / _repo_folder(repo)).is_dir() else "not cached"
        searched.append(f"Hugging Face cache {cache} (repo {repo}: {state})")
    return Lookup(None, tuple(searched))


def find_weights_file(
    filename: str,
    repo_id: str | Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Lookup:
    """Look for one weights file without loading it.

    Parameters
    ----------
    filename : str
        The file name expected (e.g. ``"HPS_v2_compressed.pt"``).
    repo_id : str or sequence of str, optional
        Hugging Face repository (or aliases) holding the file.
    path : path-like, optional
        Explicit file (any name) or folder holding ``filename``; when given,
        nothing else is searched.

    Returns
    -------
    Lookup
    """

    def accept(place: Path) -> Path | None:
        if path is not None and place.is_file():
            return place
        return place / filename if (place / filename).is_file() else None

    return _search(_as_tuple(repo_id), path, accept, repr(filename), include_root=True)


def find_pretrained_dir(
    repo_id: str | Sequence[str],
    required: Sequence[Sequence[str]] = HF_MODEL_FILES,
    path: str | os.PathLike[str] | None = None,
) -> Lookup:
    """Look for a transformers model or tokenizer folder without loading it.

    Parameters
    ----------
    repo_id : str or sequence of str
        Hugging Face repository (or aliases), e.g. ``"openai/clip-vit-large-patch14"``.
    required : sequence of sequence of str
        File groups the folder must hold: one file of every group.
    path : path-like, optional
        Explicit folder; when given, nothing else is searched.

    Returns
    -------
    Lookup
    """

    def accept(place: Path) -> Path | None:
        return place if _has_files(place, required) else None

    need = _describe_groups(required)
    return _search(_as_tuple(repo_id), path, accept, need, include_root=False)


def resolve_weights_file(
    filename: str,
    repo_id: str | Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    what: str = "reward weights",
) -> Path:
    """Return the path of a weights file, or raise :class:`RewardWeightsNotFoundError`."""
    lookup = find_weights_file(filename, repo_id, path)
    if lookup.found is None:
        repos = _as_tuple(repo_id)
        hint = f"Download: hf download {repos[0]} {filename}" if repos else ""
        raise RewardWeightsNotFoundError(what, repr(filename), lookup.searched, hint)
    return lookup.found


def resolve_pretrained_dir(
    repo_id: str | Sequence[str],
    required: Sequence[Sequence[str]] = HF_MODEL_FILES,
    path: str | os.PathLike[str] | None = None,
    what: str = "reward model",
) -> Path:
    """Return a local transformers folder, or raise :class:`RewardWeightsNotFoundError`."""
    lookup = find_pretrained_dir(repo_id, required, path)
    if lookup.found is None:
        repos = _as_tuple(repo_id)
        expected = f"a folder of {repos[0]} with {_describe_groups(required)}"
        hint = f"Download: hf download {repos[0]}"
        raise RewardWeightsNotFoundError(what, expected, lookup.searched, hint)
    return lookup.found
