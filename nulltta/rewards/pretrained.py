"""Shared machinery of the learned rewards: frozen models, dtypes, CLIP helpers.

A :class:`PretrainedReward` holds one frozen model (eval mode,
``requires_grad=False``) that stays in eval mode even when the reward is put
in train mode, casts preprocessed images to the model's dtype (fp16/bf16
models work) and returns float32 scores. Text embeddings, which do not
depend on the image, are computed without a graph and cached per prompt.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .base import Reward
from .checkpoints import freeze
from .loading import (
    HF_MODEL_FILES,
    HF_TOKENIZER_FILES,
    RewardWeightsError,
    RewardWeightsNotFoundError,
    find_pretrained_dir,
    resolve_pretrained_dir,
)
from .preprocess import normalize, resize_longest_side_pad, resize_shortest_side_center_crop

__all__ = [
    "MLPHead",
    "PretrainedReward",
    "as_dtype",
    "clip_image_features",
    "clip_image_size",
    "clip_text_features",
    "is_repo_id",
    "load_hf_model",
    "load_hf_tokenizer",
    "transformers_dtype_kwargs",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

PathLike = str | os.PathLike[str]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """Read a dtype given as ``torch.float16`` or a name (``"fp16"``, ``"bfloat16"``)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}")
    return _DTYPES[key]


def transformers_dtype_kwargs(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``from_pretrained`` keyword for a dtype: ``dtype`` (>= 4.56) or ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _pooled(output: Any) -> Tensor:
    # transformers < 5 returns the projected features; >= 5 a model output whose
    # pooler_output holds them.
    if isinstance(output, Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        pooled = getattr(output, "image_embeds", None)
    if pooled is None:
        pooled = getattr(output, "text_embeds", None)
    if pooled is None:
        raise TypeError(f"cannot read features from a {type(output).__name__}")
    return pooled


def clip_image_features(model: nn.Module, pixel_values: Tensor) -> Tensor:
    """Projected image embeddings of a transformers CLIP model.

    Works with ``CLIPModel`` (``get_image_features``) and
    ``CLIPVisionModelWithProjection`` (``image_embeds``), on transformers 4 and 5.
    """
    if hasattr(model, "get_image_features"):
        return _pooled(model.get_image_features(pixel_values=pixel_values))
    return _pooled(model(pixel_values=pixel_values))


def clip_text_features(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """Projected text embeddings of a transformers ``CLIPModel``."""
    return _pooled(model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def clip_image_size(model: nn.Module) -> int:
    """Input side length of a transformers CLIP model (its vision config's ``image_size``)."""
    config = model.config
    vision = getattr(config, "vision_config", None) or config
    size = vision.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def is_repo_id(value: object) -> bool:
    """Whether ``value`` reads as a hub repo id (``"org/name"``) rather than an existing path."""
    return (
        isinstance(value, str) and not os.path.exists(value) and _REPO_ID.match(value) is not None
    )


def load_hf_model(
    source: nn.Module | PathLike | None,
    repo_id: str,
    what: str,
    model_cls: Any,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """Load a transformers model given as an object, a local folder, a repo id or ``None``.

    ``None`` means ``repo_id``; a repo id is looked up in ``$NULLTTA_WEIGHTS_DIR``
    and the hub cache (never downloaded). Objects are returned as they are.

    Raises
    ------
    RewardWeightsNotFoundError
        When the folder is not found.
    RewardWeightsError
        When the folder holds no loadable ``model_cls``.
    """
    if isinstance(source, nn.Module):
        return source
    if source is None or is_repo_id(source):
        folder = resolve_pretrained_dir(str(source or repo_id), HF_MODEL_FILES, what=what)
    else:
        folder = resolve_pretrained_dir(repo_id, HF_MODEL_FILES, path=source, what=what)
    kwargs = transformers_dtype_kwargs(dtype or torch.float32)
    try:
        return model_cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
    except Exception as err:  # transformers raises many types; name the folder once
        raise RewardWeightsError(
            f"{what}: cannot load a {model_cls.__name__} from {folder}: {type(err).__name__}: {err}"
        ) from err


def load_hf_tokenizer(
    source: Any,
    repo_ids: Sequence[str],
    what: str,
    fallback_dirs: Sequence[PathLike] = (),
    tokenizer_cls: Any = None,
) -> Any:
    """Load a transformers tokenizer given as an object, a folder, a repo id or ``None``.

    ``None`` tries each of ``repo_ids`` (``$NULLTTA_WEIGHTS_DIR``, hub cache),
    then the tokenizer files of ``fallback_dirs`` (e.g. the model's own folder).
    ``tokenizer_cls`` defaults to ``AutoTokenizer``.
    """
    if tokenizer_cls is None:
        from transformers import AutoTokenizer

        tokenizer_cls = AutoTokenizer

    if source is not None and not isinstance(source, (str, os.PathLike)):
        return source
    if source is not None and not is_repo_id(source):
        folder = resolve_pretrained_dir(
            repo_ids[0] if repo_ids else "the tokenizer",
            HF_TOKENIZER_FILES,
            path=source,
            what=f"{what} tokenizer",
        )
    else:
        candidates = [str(source)] if source is not None else list(repo_ids)
        searched: list[str] = []
        folder = None
        for repo in candidates:
            lookup = find_pretrained_dir(repo, HF_TOKENIZER_FILES)
            searched += [f"[{repo}] {line}" for line in lookup.searched]
            if lookup.found is not None:
                folder = lookup.found
                break
        for extra in fallback_dirs if folder is None else ():
            lookup = find_pretrained_dir("", HF_TOKENIZER_FILES, path=extra)
            searched += [f"[model folder] {line}" for line in lookup.searched]
            if lookup.found is not None:
                folder = lookup.found
                break
        if folder is None:
            name = candidates[0] if candidates else "the model's folder"
            raise RewardWeightsNotFoundError(
                f"{what} tokenizer",
                f"tokenizer files ('tokenizer.json' or 'vocab.json' or 'vocab.txt') of {name}",
                searched,
                f"Download: hf download {candidates[0]}" if candidates else "",
            )
    try:
        return tokenizer_cls.from_pretrained(str(folder), local_files_only=True)
    except Exception as err:
        raise RewardWeightsError(
            f"{what}: cannot load a tokenizer from {folder}: {type(err).__name__}: {err}"
        ) from err


class MLPHead(nn.Module):
    """The linear MLP of the LAION aesthetic predictor and of ImageReward.

    ``Linear(d, 1024) - Dropout(0.2) - Linear(1024, 128) - Dropout(0.2) -
    Linear(128, 64) - Dropout(0.1) - Linear(64, 16) - Linear(16, 1)``, no
    activations, parameter names ``layers.{0,2,4,6,7}`` as in both checkpoints.

    Parameters
    ----------
    input_size : int
        Embedding size (768 for CLIP ViT-L/14 and BLIP's BERT).
    """

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.input_size = input_size
        self.layers = nn.Sequential(
            nn.Linear(input_size, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, embeds: Tensor) -> Tensor:
        """Return ``(B, 1)`` raw scores."""
        return self.layers(embeds)


class PretrainedReward(Reward):
    """Base of the rewards that wrap a frozen pretrained model.

    Parameters
    ----------
    model : nn.Module
        The scoring model; frozen here (eval, ``requires_grad=False``).
    dtype : torch.dtype or str, optional
        Cast the model to this dtype; by default it keeps its own.
    device : str or torch.device, optional
        Move the model there; by default it stays where it is.
    text_cache_size : int, default=256
        How many prompt embeddings to keep (0 disables the cache).

    Notes
    -----
    A model object passed in is frozen, cast and moved in place, so one loaded
    CLIP can be shared by several rewards. Choose the dtype with ``dtype=``:
    torchmetrics makes ``.half()``/``.float()`` no-ops on metrics.
    """

    def __init__(
        self,
        model: nn.Module,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        text_cache_size: int = 256,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = freeze(model, as_dtype(dtype), device)
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[tuple[str, str, str], Tensor] = OrderedDict()

    def train(self, mode: bool = True) -> PretrainedReward:
        """Set the metric's mode; the wrapped (frozen) models always stay in eval mode."""
        self.training = mode
        for module in self.children():
            module.eval()
        return self

    @property
    def model_dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        for param in self.model.parameters():
            if param.is_floating_point():
                return param.dtype
        return torch.float32

    @property
    def model_device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def prepare_images(self, images: Tensor, size: int, mode: str = "crop") -> Tensor:
        """Resize, normalise with the CLIP mean/std, cast to the model's device and dtype.

        ``mode="crop"``: shortest side to ``size`` and centre crop; ``"pad"``:
        longest side to ``size`` and black padding to a square.
        """
        images = images.to(self.model_device)
        if mode == "crop":
            pixels = resize_shortest_side_center_crop(images.float(), size)
        elif mode == "pad":
            pixels = resize_longest_side_pad(images.float(), size)
        else:
            raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
        return normalize(pixels).to(self.model_dtype)

    def cached_text_embeddings(
        self, prompts: Sequence[str], encode: Callable[[list[str]], Tensor]
    ) -> Tensor:
        """Float32 text embeddings of ``prompts``, encoding only the uncached ones.

        ``encode`` maps a list of prompts to ``(N, D)`` embeddings; it runs
        without a graph (the text branch does not depend on the image and the
        model is frozen).
        """
        key_suffix = (str(self.model_device), str(self.model_dtype))
        cache = self._text_cache
        missing = list(dict.fromkeys(p for p in prompts if (p, *key_suffix) not in cache))
        fresh: dict[str, Tensor] = {}
        if missing:
            with torch.no_grad():
                embeds = encode(missing).float()
            fresh = dict(zip(missing, embeds, strict=True))
        rows = []
        for prompt in prompts:
            key = (prompt, *key_suffix)
            if prompt in fresh:
                row = fresh[prompt]
            else:
                row = self._text_cache[key]
                self._text_cache.move_to_end(key)
            rows.append(row)
            if self.text_cache_size > 0:
                self._text_cache[key] = row
        while len(self._text_cache) > max(self.text_cache_size, 0):
            self._text_cache.popitem(last=False)
        return torch.stack(rows)

    def clear_text_cache(self) -> None:
        """Forget cached prompt embeddings."""
        self._text_cache.clear()
