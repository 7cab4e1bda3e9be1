"""CLIPScore, differentiable: ``max(100 * cos(image, prompt), 0)`` with any CLIP.

torchmetrics' ``CLIPScore`` sends images through a CPU processor (PIL), which
breaks the graph; this one preprocesses with torch ops so gradients reach the
image. The formula is torchmetrics' own.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from .functional import clip_score_from_embeddings
from .loading import HF_MODEL_FILES, find_pretrained_dir
from .pretrained import (
    PretrainedReward,
    as_dtype,
    clip_image_features,
    clip_image_size,
    clip_text_features,
    is_repo_id,
    load_hf_model,
    load_hf_tokenizer,
)
from .registry import register_reward

__all__ = ["CLIPScore", "CLIPSimilarityReward", "clipscore_available"]

#: Default CLIP of torchmetrics' CLIPScore.
CLIPSCORE_REPO = "openai/clip-vit-large-patch14"


class CLIPSimilarityReward(PretrainedReward):
    """Base of the rewards that compare CLIP image and prompt embeddings.

    Subclasses define :meth:`combine`. Images are resized (shortest side) to
    the model's input size, centre-cropped and normalised with the CLIP
    mean/std; prompts are tokenised with truncation to the text model's
    context length, and their embeddings cached.

    Parameters
    ----------
    model : transformers CLIPModel
        Loaded model (frozen here).
    tokenizer : transformers tokenizer
        The model's tokenizer.
    dtype, device, **kwargs
        See :class:`~nulltta.rewards.pretrained.PretrainedReward`.
    """

    requires_prompts = True

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, dtype=dtype, device=device, **kwargs)
        self.tokenizer = tokenizer
        self.image_size = clip_image_size(self.model)
        text_config = getattr(self.model.config, "text_config", None)
        self.max_length = int(getattr(text_config, "max_position_embeddings", 77))

    def image_embeddings(self, images: Tensor) -> Tensor:
        """Projected image embeddings ``(B, D)`` (model dtype), with the graph."""
        pixels = self.prepare_images(images, self.image_size, mode="crop")
        return clip_image_features(self.model, pixels)

    def _encode_text(self, prompts: list[str]) -> Tensor:
        tokens = self.tokenizer(
            prompts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        device = self.model_device
        return clip_text_features(
            self.model, tokens["input_ids"].to(device), tokens["attention_mask"].to(device)
        )

    def text_embeddings(self, prompts: list[str]) -> Tensor:
        """Float32 prompt embeddings ``(B, D)``, cached, without a graph."""
        return self.cached_text_embeddings(prompts, self._encode_text)

    def combine(self, image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """Scores from paired embeddings; defined by subclasses."""
        raise NotImplementedError

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Score images against their prompts."""
        assert prompts is not None  # requires_prompts
        image_embeds = self.image_embeddings(images)
        text_embeds = self.text_embeddings(prompts).to(image_embeds.device)
        return self.combine(image_embeds, text_embeds)


class CLIPScore(CLIPSimilarityReward):
    """CLIPScore ``max(100 * cos(E_image, E_prompt), 0)``, differentiable.

    Parameters
    ----------
    model : str, path, CLIPModel, optional
        A loaded ``CLIPModel`` (e.g. shared with another reward), a local
        folder, or a hub repo id found in ``$NULLTTA_WEIGHTS_DIR`` or the hub
        cache. Default: ``"openai/clip-vit-large-patch14"``, torchmetrics'
        default.
    tokenizer : str, path or tokenizer, optional
        Default: the tokenizer files of the model's repo or folder.
    dtype : torch.dtype or str, optional
        Model dtype (``"fp16"``, ``"bf16"``); scores are float32.
    device : str or torch.device, optional
        Where to put the model.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module | None = None,
        tokenizer: Any = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> None:
        if model is None:
            tokenizer_repos = [CLIPSCORE_REPO]
        else:
            tokenizer_repos = [str(model)] if is_repo_id(model) else []
        clip, tok = load_clip_and_tokenizer(
            model, tokenizer, CLIPSCORE_REPO, tokenizer_repos, "CLIPScore", dtype
        )
        super().__init__(clip, tok, dtype=dtype, device=device, **kwargs)

    def combine(self, image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """Return ``max(100 * cos, 0)``."""
        return clip_score_from_embeddings(image_embeds, text_embeds)


def load_clip_and_tokenizer(
    model: Any,
    tokenizer: Any,
    default_repo: str,
    tokenizer_repos: list[str],
    what: str,
    dtype: torch.dtype | str | None,
) -> tuple[nn.Module, Any]:
    """A transformers ``CLIPModel`` and its tokenizer, found as every reward finds weights.

    The tokenizer is ``tokenizer`` if given, else the first of
    ``tokenizer_repos`` found, else the tokenizer files in the model's folder.
    """
    clip = load_hf_model(model, default_repo, what, _clip_model_cls(), as_dtype(dtype))
    model_dir = _model_folder(clip)
    tok = load_hf_tokenizer(
        tokenizer, tokenizer_repos, what, fallback_dirs=[model_dir] if model_dir else []
    )
    return clip, tok


def _clip_model_cls() -> Any:
    from transformers import CLIPModel

    return CLIPModel


def _model_folder(model: nn.Module) -> str | None:
    """Return the local folder a transformers model was loaded from, if any."""
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return name if name and os.path.isdir(name) else None


def clipscore_available() -> tuple[bool, str]:
    """Whether the default CLIPScore model is on this machine (nothing is loaded)."""
    lookup = find_pretrained_dir(CLIPSCORE_REPO, HF_MODEL_FILES)
    if lookup.found is not None:
        return True, str(lookup.found)
    return False, "; ".join(lookup.searched)


register_reward(
    "clipscore",
    "CLIPScore max(100 cos, 0), differentiable, any transformers CLIP",
    needs=f"{CLIPSCORE_REPO} (or model=<CLIP folder or object>)",
    is_available=clipscore_available,
)(CLIPScore)
