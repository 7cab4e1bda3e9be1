"""Human Preference Score v2 and v2.1 (Wu et al. 2023) on open_clip, without ``hpsv2``.

As in the reference (``hpsv2/img_score.py``): open_clip ``ViT-H-14`` with the
HPS checkpoint (``HPS_v2_compressed.pt`` / ``HPS_v2.1_compressed.pt`` from the
hub repo ``xswu/HPSv2``, a dict holding ``"state_dict"``) loaded over it;
images resized on the longest side to 224 and padded to a square with black
(``ResizeMaxSize``), CLIP mean/std; prompts with open_clip's tokenizer; the
score is the cosine of the normalised image and text embeddings (tables
print it x100). The ``hpsv2`` package itself is not used: its release pins
pytest, lacks its BPE file and imports tkinter.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoints import extract_state_dict, load_checkpoint, load_state_dict_checked
from .functional import hps_score
from .loading import (
    find_weights_file,
    resolve_weights_file,
)
from .pretrained import PretrainedReward, as_dtype
from .registry import register_reward

__all__ = ["HPS_FILES", "HPS_REPO", "HPSv2", "hpsv2_available", "load_hps_model"]

HPS_REPO = "xswu/HPSv2"
#: Checkpoint file of each HPS version in :data:`HPS_REPO`.
HPS_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
_VERSION_ALIASES = {"v2": "v2.0", "2": "v2.0", "2.0": "v2.0", "2.1": "v2.1"}


def _version(version: str) -> str:
    key = _VERSION_ALIASES.get(str(version), str(version))
    if key not in HPS_FILES:
        raise ValueError(f"unknown HPS version {version!r}; use 'v2.0' or 'v2.1'")
    return key


def load_hps_model(
    path: str | os.PathLike[str] | None = None,
    version: str = "v2.0",
    arch: str = "ViT-H-14",
) -> nn.Module:
    """Build open_clip ``arch`` and load an HPS checkpoint over it.

    Parameters
    ----------
    path : path-like, optional
        The checkpoint file or a folder holding it; default: the version's
        file in ``$NULLTTA_WEIGHTS_DIR`` or the hub cache of ``xswu/HPSv2``.
    version : {"v2.0", "v2.1"}
        Which HPS checkpoint.
    arch : str, default="ViT-H-14"
        open_clip model name (tests register small ones).

    Returns
    -------
    nn.Module
        The open_clip model with the HPS weights, in eval mode.

    Raises
    ------
    RewardWeightsNotFoundError
        When the checkpoint is not found.
    RewardWeightsError
        When it does not fit the architecture.
    """
    import open_clip

    version = _version(version)
    what = f"HPS{version}"
    file = resolve_weights_file(HPS_FILES[version], HPS_REPO, path, what=what)
    state = extract_state_dict(load_checkpoint(file, what), file)
    model = open_clip.create_model(arch, pretrained=None, load_weights=False)
    scale = state.get("logit_scale")
    if scale is not None and scale.ndim != model.logit_scale.ndim:
        state["logit_scale"] = scale.reshape(model.logit_scale.shape)
    load_state_dict_checked(model, state, file, what, ignore_unexpected=("attn_mask",))
    return model.eval()


class HPSv2(PretrainedReward):
    """HPSv2 (or v2.1) score of images for their prompts: a cosine, differentiable.

    Parameters
    ----------
    version : {"v2.0", "v2.1"}, default="v2.0"
        Which checkpoint (``"hpsv2"`` and ``"hpsv2.1"`` in the registry).
    model : str, path or open_clip model, optional
        An open_clip model already holding HPS weights, or the checkpoint file
        or a folder holding it. Default: ``$NULLTTA_WEIGHTS_DIR`` or the hub
        cache of ``xswu/HPSv2``.
    arch : str, default="ViT-H-14"
        open_clip architecture to build when loading a checkpoint.
    tokenizer : callable, optional
        open_clip tokenizer; default ``open_clip.get_tokenizer(arch)`` (its BPE
        vocabulary ships with open_clip_torch).
    dtype : torch.dtype or str, optional
        Model dtype; scores are float32.
    device : str or torch.device, optional
        Where to put the model.
    """

    requires_prompts = True

    def __init__(
        self,
        version: str = "v2.0",
        model: str | os.PathLike[str] | nn.Module | None = None,
        arch: str = "ViT-H-14",
        tokenizer: Any = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> None:
        import open_clip

        version = _version(version)
        if not isinstance(model, nn.Module):
            model = load_hps_model(model, version, arch)
        super().__init__(model, dtype=as_dtype(dtype), device=device, **kwargs)
        self.version = version
        self.tokenizer = tokenizer if tokenizer is not None else open_clip.get_tokenizer(arch)
        size = getattr(self.model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)

    def image_embeddings(self, images: Tensor) -> Tensor:
        """open_clip image embeddings ``(B, D)`` (model dtype), with the graph."""
        pixels = self.prepare_images(images, self.image_size, mode="pad")
        return self.model.encode_image(pixels)

    def _encode_text(self, prompts: list[str]) -> Tensor:
        tokens = self.tokenizer(prompts).to(self.model_device)
        return self.model.encode_text(tokens)

    def text_embeddings(self, prompts: list[str]) -> Tensor:
        """Float32 prompt embeddings ``(B, D)``, cached, without a graph."""
        return self.cached_text_embeddings(prompts, self._encode_text)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Cosine of normalised image and prompt embeddings."""
        assert prompts is not None  # requires_prompts
        image_embeds = self.image_embeddings(images)
        text_embeds = self.text_embeddings(prompts).to(image_embeds.device)
        return hps_score(image_embeds, text_embeds)


def _available(version: str) -> tuple[bool, str]:
    lookup = find_weights_file(HPS_FILES[version], HPS_REPO)
    if lookup.found is not None:
        return True, str(lookup.found)
    return False, "; ".join(lookup.searched)


def hpsv2_available(version: str = "v2.0") -> tuple[bool, str]:
    """Whether the HPS checkpoint of ``version`` is on this machine (nothing is loaded)."""
    return _available(_version(version))


def _hpsv2(**kwargs: Any) -> HPSv2:
    """HPSv2.0 reward (registry factory)."""
    return HPSv2(version="v2.0", **kwargs)


def _hpsv21(**kwargs: Any) -> HPSv2:
    """HPSv2.1 reward (registry factory)."""
    return HPSv2(version="v2.1", **kwargs)


register_reward(
    "hpsv2",
    "HPSv2 cosine (open_clip ViT-H-14), differentiable",
    needs=f"{HPS_FILES['v2.0']} of {HPS_REPO}",
    is_available=lambda: hpsv2_available("v2.0"),
)(_hpsv2)
register_reward(
    "hpsv2.1",
    "HPSv2.1 cosine (open_clip ViT-H-14), differentiable",
    needs=f"{HPS_FILES['v2.1']} of {HPS_REPO}",
    is_available=lambda: hpsv2_available("v2.1"),
)(_hpsv21)
