"""LAION aesthetic predictor v2 (christophschuhmann/improved-aesthetic-predictor).

As in the reference (``simple_inference.py``): the CLIP ViT-L/14 image
embedding (``encode_image``; here the transformers port
``openai/clip-vit-large-patch14``), L2-normalised, into the linear MLP
``768-1024-128-64-16-1`` (dropouts, no activations, eval mode) of
``sac+logos+ava1-l14-linearMSE.pth``. Images: shortest side to 224, centre
crop, CLIP mean/std. The head runs in float32 whatever the CLIP dtype.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoints import extract_state_dict, freeze, load_checkpoint, load_state_dict_checked
from .clipscore import _clip_model_cls
from .functional import aesthetic_score
from .loading import (
    HF_MODEL_FILES,
    RewardWeightsError,
    find_pretrained_dir,
    find_weights_file,
    resolve_weights_file,
)
from .pretrained import (
    MLPHead,
    PretrainedReward,
    as_dtype,
    clip_image_features,
    clip_image_size,
    load_hf_model,
)
from .registry import register_reward

__all__ = [
    "AESTHETIC_CLIP_REPO",
    "AESTHETIC_FILE",
    "AESTHETIC_REPO",
    "Aesthetic",
    "aesthetic_available",
    "load_aesthetic_head",
]

AESTHETIC_FILE = "sac+logos+ava1-l14-linearMSE.pth"
#: Hub mirror of the predictor's GitHub release.
AESTHETIC_REPO = "camenduru/improved-aesthetic-predictor"
AESTHETIC_CLIP_REPO = "openai/clip-vit-large-patch14"


def load_aesthetic_head(path: str | os.PathLike[str] | None = None) -> MLPHead:
    """Load the aesthetic MLP head from ``sac+logos+ava1-l14-linearMSE.pth``.

    Parameters
    ----------
    path : path-like, optional
        The ``.pth`` file or a folder holding it; default
        ``$NULLTTA_WEIGHTS_DIR`` or the hub cache of the mirror repo.

    Returns
    -------
    MLPHead
        In eval mode; its input size is read from the checkpoint.
    """
    what = "LAION aesthetic predictor head"
    file = resolve_weights_file(AESTHETIC_FILE, AESTHETIC_REPO, path, what=what)
    state = extract_state_dict(load_checkpoint(file, what), file)
    if not any(k.startswith("layers.") for k in state):
        state = {f"layers.{k}": v for k, v in state.items()}
    first = state.get("layers.0.weight")
    if first is None or first.ndim != 2:
        raise RewardWeightsError(
            f"{what}: {file} has no 'layers.0.weight' matrix; keys: {sorted(state)[:6]}"
        )
    head = MLPHead(int(first.shape[1]))
    load_state_dict_checked(head, state, file, what)
    return head.eval()


class Aesthetic(PretrainedReward):
    """LAION aesthetic score (1-10 scale, about 5 for SD images), differentiable.

    Parameters
    ----------
    head : str, path or nn.Module, optional
        The MLP head (an :class:`~nulltta.rewards.pretrained.MLPHead` or any
        module mapping ``(B, 768)`` to ``(B, 1)``), or its ``.pth`` file or
        folder. Default: ``sac+logos+ava1-l14-linearMSE.pth`` from
        ``$NULLTTA_WEIGHTS_DIR`` or the hub cache.
    clip_model : str, path or CLIP model, optional
        A loaded transformers ``CLIPModel`` (or ``CLIPVisionModelWithProjection``),
        a folder or a repo id. Default ``openai/clip-vit-large-patch14``.
    dtype : torch.dtype or str, optional
        CLIP dtype; the head stays float32 and scores are float32.
    device : str or torch.device, optional
        Where to put both models.
    """

    requires_prompts = False

    def __init__(
        self,
        head: str | os.PathLike[str] | nn.Module | None = None,
        clip_model: str | os.PathLike[str] | nn.Module | None = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> None:
        mlp = head if isinstance(head, nn.Module) else load_aesthetic_head(head)
        clip = load_hf_model(
            clip_model,
            AESTHETIC_CLIP_REPO,
            "aesthetic CLIP ViT-L/14",
            _clip_model_cls(),
            as_dtype(dtype),
        )
        super().__init__(clip, dtype=dtype, device=device, **kwargs)
        self.head = freeze(mlp, torch.float32, self.model_device)
        self.image_size = clip_image_size(self.model)
        expected = getattr(self.head, "input_size", None)
        projection = getattr(self.model.config, "projection_dim", None)
        if expected is not None and projection is not None and expected != projection:
            raise ValueError(
                f"the aesthetic head takes {expected}-d embeddings but the CLIP model gives "
                f"{projection}-d ones; the predictor needs CLIP ViT-L/14"
            )

    def image_embeddings(self, images: Tensor) -> Tensor:
        """CLIP image embeddings ``(B, D)`` (model dtype), with the graph."""
        pixels = self.prepare_images(images, self.image_size, mode="crop")
        return clip_image_features(self.model, pixels)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Head output on the L2-normalised image embeddings."""
        return aesthetic_score(self.image_embeddings(images), self.head)


def aesthetic_available() -> tuple[bool, str]:
    """Whether the head file and CLIP ViT-L/14 are on this machine (nothing is loaded)."""
    head = find_weights_file(AESTHETIC_FILE, AESTHETIC_REPO)
    clip = find_pretrained_dir(AESTHETIC_CLIP_REPO, HF_MODEL_FILES)
    if head.found is not None and clip.found is not None:
        return True, f"{head.found} + {clip.found}"
    missing = []
    if head.found is None:
        missing.append(f"{AESTHETIC_FILE} ({'; '.join(head.searched)})")
    if clip.found is None:
        missing.append(f"{AESTHETIC_CLIP_REPO} ({'; '.join(clip.searched)})")
    return False, "missing " + " and ".join(missing)


register_reward(
    "aesthetic",
    "LAION aesthetic predictor v2 (CLIP ViT-L/14 + linear MLP), differentiable",
    needs=f"{AESTHETIC_FILE} ({AESTHETIC_REPO}) + {AESTHETIC_CLIP_REPO}",
    is_available=aesthetic_available,
)(Aesthetic)
