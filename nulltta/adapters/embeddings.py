"""The embeddings an adapter hands the denoiser, and their batch operations.

Embeddings are dicts of tensors with the batch first (``{"encoder_hidden_states":
(B, L, D)}`` for SD; SDXL adds pooled embeddings and time ids).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Embeddings", "cat_embeddings", "repeat_embeddings"]

Embeddings = dict[str, Tensor]


def repeat_embeddings(embeddings: Embeddings, times: int) -> Embeddings:
    """Tile every entry ``times`` times along the batch (k-major: ``[e, e, ..., e]``)."""
    return {key: value.repeat(times, *[1] * (value.ndim - 1)) for key, value in embeddings.items()}


def cat_embeddings(parts: list[Embeddings]) -> Embeddings:
    """Concatenate embeddings along the batch."""
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
