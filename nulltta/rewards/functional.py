"""Functional twins of the learned rewards: the score formulas on embeddings.

Pure functions of tensors, as torchmetrics pairs each metric class with a
function: the reward classes compute embeddings and call these. Every
function returns float32 scores of shape ``(B,)`` whatever the embedding
dtype, and keeps the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "IMAGEREWARD_MEAN",
    "IMAGEREWARD_STD",
    "aesthetic_score",
    "clip_score_from_embeddings",
    "cosine_similarity",
    "hps_score",
    "imagereward_normalize",
    "l2_normalize",
    "pickscore_from_embeddings",
]

#: Mean of the raw ImageReward MLP output, subtracted by the reference code.
IMAGEREWARD_MEAN = 0.16717362830052426
#: Standard deviation of the raw ImageReward MLP output.
IMAGEREWARD_STD = 1.0333394966054072


def l2_normalize(embeds: Tensor) -> Tensor:
    """Divide each row by its L2 norm, in float32 (zero rows stay zero).

    Parameters
    ----------
    embeds : Tensor
        ``(B, D)`` embeddings of any float dtype.

    Returns
    -------
    Tensor
        ``(B, D)`` float32 unit vectors.
    """
    return F.normalize(embeds.float(), p=2, dim=-1, eps=1e-12)


def _check_pair(image_embeds: Tensor, text_embeds: Tensor) -> None:
    if image_embeds.ndim != 2 or text_embeds.ndim != 2:
        raise ValueError(
            f"expected (B, D) embeddings, got {tuple(image_embeds.shape)} and "
            f"{tuple(text_embeds.shape)}"
        )
    if image_embeds.shape[-1] != text_embeds.shape[-1]:
        raise ValueError(
            f"image and text embeddings differ in size: {image_embeds.shape[-1]} vs "
            f"{text_embeds.shape[-1]}"
        )


def cosine_similarity(image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
    """Row-wise cosine ``<i / |i|, t / |t|>`` of paired embeddings.

    ``text_embeds`` may have one row for all images.

    Returns
    -------
    Tensor
        ``(B,)`` float32.
    """
    _check_pair(image_embeds, text_embeds)
    return (l2_normalize(image_embeds) * l2_normalize(text_embeds)).sum(dim=-1)


def pickscore_from_embeddings(
    image_embeds: Tensor, text_embeds: Tensor, logit_scale: Tensor | float
) -> Tensor:
    """PickScore: ``exp(logit_scale) * cos(image, text)``.

    Parameters
    ----------
    image_embeds, text_embeds : Tensor
        ``(B, D)`` projected CLIP embeddings (``get_image_features`` /
        ``get_text_features``), not yet normalised.
    logit_scale : Tensor or float
        The model's ``logit_scale`` parameter as stored in the checkpoint, i.e.
        the *log* of the multiplier (about ``log(100)`` for PickScore_v1).

    Returns
    -------
    Tensor
        ``(B,)`` float32 scores (about 20-23 for ordinary SD images).
    """
    scale = torch.as_tensor(logit_scale, dtype=torch.float32, device=image_embeds.device)
    return scale.exp() * cosine_similarity(image_embeds, text_embeds)


def hps_score(image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
    """HPSv2 / HPSv2.1: cosine of the normalised open_clip embeddings.

    Papers and tables print it multiplied by 100 (0.27 is printed 27).
    """
    return cosine_similarity(image_embeds, text_embeds)


def clip_score_from_embeddings(image_embeds: Tensor, text_embeds: Tensor) -> Tensor:
    """CLIPScore as torchmetrics defines it: ``max(100 * cos(image, text), 0)``."""
    return (100.0 * cosine_similarity(image_embeds, text_embeds)).clamp(min=0.0)


def aesthetic_score(image_embeds: Tensor, head: Callable[[Tensor], Tensor]) -> Tensor:
    """LAION aesthetic predictor v2: the MLP head on L2-normalised CLIP image embeddings.

    Parameters
    ----------
    image_embeds : Tensor
        ``(B, D)`` CLIP ViT-L/14 image embeddings (``encode_image``).
    head : callable
        The linear MLP ``D-1024-128-64-16-1``, in eval mode.

    Returns
    -------
    Tensor
        ``(B,)`` float32 scores on the 1-10 rating scale.
    """
    if image_embeds.ndim != 2:
        raise ValueError(f"expected (B, D) embeddings, got {tuple(image_embeds.shape)}")
    normed = l2_normalize(image_embeds)
    weight = next(iter(getattr(head, "parameters", lambda: iter(()))()), None)
    if weight is not None:
        normed = normed.to(weight.dtype)
    return head(normed).float().reshape(-1)


def imagereward_normalize(raw: Tensor) -> Tensor:
    """Standardise the ImageReward MLP output: ``(raw - mean) / std``.

    Uses the constants of the reference code, :data:`IMAGEREWARD_MEAN` and
    :data:`IMAGEREWARD_STD`.
    """
    return (raw.float() - IMAGEREWARD_MEAN) / IMAGEREWARD_STD
