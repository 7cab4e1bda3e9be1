"""PickScore (Kirstain et al. 2023): ``exp(logit_scale) * cos(image, prompt)`` with CLIP-H.

As in the reference code (README of yuvalkirstain/PickScore): a transformers
``CLIPModel`` fine-tuned from ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``,
images resized on the shortest side to 224 and centre-cropped, CLIP
mean/std, prompts tokenised with the laion processor (truncation at 77), and
the score ``model.logit_scale.exp() * (text_emb @ image_emb)`` on normalised
embeddings, with the scale read from the checkpoint.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from .clipscore import CLIPSimilarityReward, load_clip_and_tokenizer
from .functional import pickscore_from_embeddings
from .loading import HF_MODEL_FILES, HF_TOKENIZER_FILES, find_pretrained_dir
from .pretrained import is_repo_id
from .registry import register_reward

__all__ = ["PICKSCORE_PROCESSOR_REPO", "PICKSCORE_REPO", "PickScore", "pickscore_available"]

PICKSCORE_REPO = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


class PickScore(CLIPSimilarityReward):
    """PickScore of images for their prompts (differentiable; about 21-23 for SD images).

    Parameters
    ----------
    model : str, path or CLIPModel, optional
        A loaded ``CLIPModel``, a local folder of ``PickScore_v1``, or a repo
        id. Default: ``yuvalkirstain/PickScore_v1`` from ``$NULLTTA_WEIGHTS_DIR``
        or the hub cache.
    tokenizer : str, path or tokenizer, optional
        Default: the tokenizer of ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
        (the reference's processor), else tokenizer files in the model folder.
    dtype : torch.dtype or str, optional
        Model dtype (``"fp16"``, ``"bf16"``); scores are float32.
    device : str or torch.device, optional
        Where to put the model.

    Notes
    -----
    The paper's tables print PickScore divided by 100 (0.218 for SD1.5);
    this reward returns the model's own scale (21.8).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module | None = None,
        tokenizer: Any = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> None:
        tokenizer_repos = [PICKSCORE_PROCESSOR_REPO]
        if is_repo_id(model) and model != PICKSCORE_REPO:
            tokenizer_repos.append(str(model))
        clip, tok = load_clip_and_tokenizer(
            model, tokenizer, PICKSCORE_REPO, tokenizer_repos, "PickScore", dtype
        )
        super().__init__(clip, tok, dtype=dtype, device=device, **kwargs)

    def combine(self, image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
        """Return ``exp(logit_scale) * cos`` with the checkpoint's ``logit_scale``."""
        return pickscore_from_embeddings(image_embeds, text_embeds, self.model.logit_scale)


def pickscore_available() -> tuple[bool, str]:
    """Whether PickScore_v1 and its tokenizer are on this machine (nothing is loaded)."""
    model = find_pretrained_dir(PICKSCORE_REPO, HF_MODEL_FILES)
    if model.found is None:
        return False, "; ".join(model.searched)
    tok = find_pretrained_dir(PICKSCORE_PROCESSOR_REPO, HF_TOKENIZER_FILES)
    if tok.found is None:
        tok = find_pretrained_dir("", HF_TOKENIZER_FILES, path=model.found)
        if tok.found is None:
            return False, f"model at {model.found}; tokenizer of {PICKSCORE_PROCESSOR_REPO} missing"
    return True, f"{model.found} (tokenizer {tok.found})"


register_reward(
    "pickscore",
    "PickScore exp(logit_scale) cos (CLIP-H), differentiable",
    needs=f"{PICKSCORE_REPO} + tokenizer of {PICKSCORE_PROCESSOR_REPO}",
    is_available=pickscore_available,
)(PickScore)
