"""ImageReward (Xu et al. 2023), differentiable, without the authors' package.

As in the reference (``ImageReward/ImageReward.py``, ``score``): images
resized on the shortest side to 224, centre-cropped, CLIP mean/std; prompts
tokenised by ``bert-base-uncased`` with ``[DEC]`` added as bos and ``[ENC]`` as
an extra special token, padded to 35 tokens with truncation; the BLIP text
encoder cross-attends to the ViT-L image tokens, the MLP reads the first
token, and the score is ``(mlp - 0.16717362830052426) / 1.0333394966054072``.
The network (:mod:`nulltta.rewards.imagereward_model`) loads ``ImageReward.pt``
and ``med_config.json`` of the hub repo ``THUDM/ImageReward`` directly.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoints import extract_state_dict, load_checkpoint, load_state_dict_checked
from .functional import imagereward_normalize
from .imagereward_model import BlipVisionConfig, ImageRewardModel, MedConfig
from .loading import (
    HF_TOKENIZER_FILES,
    RewardWeightsError,
    find_pretrained_dir,
    find_weights_file,
    resolve_weights_file,
)
from .pretrained import PretrainedReward, as_dtype, load_hf_tokenizer
from .registry import register_reward

__all__ = [
    "IMAGEREWARD_CONFIG",
    "IMAGEREWARD_FILE",
    "IMAGEREWARD_REPO",
    "ImageReward",
    "imagereward_available",
    "load_imagereward_model",
    "load_imagereward_tokenizer",
]

IMAGEREWARD_REPO = "THUDM/ImageReward"
IMAGEREWARD_FILE = "ImageReward.pt"
IMAGEREWARD_CONFIG = "med_config.json"
#: The tokenizer repo under its current and its historical name.
BERT_REPOS = ("google-bert/bert-base-uncased", "bert-base-uncased")
#: Prompts are padded/truncated to this many tokens, as in the reference.
MAX_LENGTH = 35


def load_imagereward_model(
    path: str | os.PathLike[str] | None = None,
    med_config: str | os.PathLike[str] | None = None,
    vision_heads: int | None = None,
) -> ImageRewardModel:
    """Build the network from ``ImageReward.pt`` and ``med_config.json``.

    Parameters
    ----------
    path : path-like, optional
        ``ImageReward.pt`` or a folder holding it (and usually
        ``med_config.json``). Default: ``$NULLTTA_WEIGHTS_DIR`` or the hub cache.
    med_config : path-like, optional
        BERT config; default: next to the checkpoint, else the same places.
    vision_heads : int, optional
        ViT attention heads (not stored in the weights); default ``width // 64``.

    Returns
    -------
    ImageRewardModel
        In eval mode. The vision sizes are read off the checkpoint.
    """
    what = "ImageReward"
    file = resolve_weights_file(IMAGEREWARD_FILE, IMAGEREWARD_REPO, path, what=what)
    sibling = file.parent / IMAGEREWARD_CONFIG
    if med_config is None and sibling.is_file():
        config_file = sibling
    else:
        config_file = resolve_weights_file(
            IMAGEREWARD_CONFIG, IMAGEREWARD_REPO, med_config, what=f"{what} BERT config"
        )
    state = extract_state_dict(load_checkpoint(file, what), file)
    try:
        vision = BlipVisionConfig.from_state_dict(state, heads=vision_heads)
    except (KeyError, ValueError) as err:
        raise RewardWeightsError(
            f"{what}: {file} is not an ImageReward checkpoint (cannot read the BLIP vision "
            f"encoder: {err}); keys start with {sorted(state)[:4]}"
        ) from err
    text = MedConfig.from_json(config_file)
    with torch.device("meta"):  # no random init of 447M parameters, no second copy
        model = ImageRewardModel(vision, text)
    load_state_dict_checked(
        model, state, file, what, ignore_unexpected=("position_ids",), assign=True
    )
    return model.float().eval()


def load_imagereward_tokenizer(source: Any = None) -> Any:
    """``bert-base-uncased`` with ``[DEC]`` (bos) and ``[ENC]`` added, as BLIP's ``init_tokenizer``.

    A tokenizer object passed in is returned unchanged.
    """
    if source is not None and not isinstance(source, (str, os.PathLike)):
        return source
    from transformers import BertTokenizer

    tokenizer = load_hf_tokenizer(source, BERT_REPOS, "ImageReward", tokenizer_cls=BertTokenizer)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


class ImageReward(PretrainedReward):
    """ImageReward score of images for their prompts (about 0 for SD1.5), differentiable.

    Parameters
    ----------
    model : str, path or ImageRewardModel, optional
        A built :class:`~nulltta.rewards.imagereward_model.ImageRewardModel`, or
        ``ImageReward.pt`` / a folder holding it. Default:
        ``$NULLTTA_WEIGHTS_DIR`` or the hub cache of ``THUDM/ImageReward``.
    med_config : path, optional
        ``med_config.json``; default next to the checkpoint.
    tokenizer : str, path or tokenizer, optional
        Default: ``bert-base-uncased`` from ``$NULLTTA_WEIGHTS_DIR`` or the hub cache.
    dtype : torch.dtype or str, optional
        Dtype of the encoders; the MLP head stays float32, scores are float32.
    device : str or torch.device, optional
        Where to put the model.
    vision_heads : int, optional
        ViT attention heads when loading a checkpoint; default ``width // 64``.
    """

    requires_prompts = True

    def __init__(
        self,
        model: str | os.PathLike[str] | nn.Module | None = None,
        med_config: str | os.PathLike[str] | None = None,
        tokenizer: Any = None,
        dtype: torch.dtype | str | None = None,
        device: str | torch.device | None = None,
        vision_heads: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            model = load_imagereward_model(model, med_config, vision_heads)
        tok = load_imagereward_tokenizer(tokenizer)
        super().__init__(model, dtype=as_dtype(dtype), device=device, **kwargs)
        self.model.mlp.float()
        self.tokenizer = tok
        vocab = self.model.blip.text_encoder.embeddings.word_embeddings.num_embeddings
        if len(tok) > vocab:
            raise ValueError(
                f"the tokenizer has {len(tok)} tokens but the text encoder only {vocab}; "
                "is it the bert-base-uncased tokenizer?"
            )
        self.image_size = self.model.image_size

    def tokenize(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        """Token ids and attention mask ``(B, 35)`` on the model's device."""
        tokens = self.tokenizer(
            prompts,
            padding="max_length",
            truncation=True,
            max_length=MAX_LENGTH,
            return_tensors="pt",
        )
        device = self.model_device
        return tokens["input_ids"].to(device), tokens["attention_mask"].to(device)

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Standardised ImageReward scores."""
        assert prompts is not None  # requires_prompts
        pixels = self.prepare_images(images, self.image_size, mode="crop")
        input_ids, attention_mask = self.tokenize(prompts)
        return imagereward_normalize(self.model(pixels, input_ids, attention_mask))


def imagereward_available() -> tuple[bool, str]:
    """Whether ImageReward.pt, med_config.json and the BERT tokenizer are here (no loading)."""
    missing, found = [], []
    for name in (IMAGEREWARD_FILE, IMAGEREWARD_CONFIG):
        lookup = find_weights_file(name, IMAGEREWARD_REPO)
        (found if lookup.found else missing).append(
            str(lookup.found) if lookup.found else f"{name} ({'; '.join(lookup.searched)})"
        )
    tok = None
    for repo in BERT_REPOS:
        tok = find_pretrained_dir(repo, HF_TOKENIZER_FILES)
        if tok.found is not None:
            break
    assert tok is not None
    if tok.found is None:
        missing.append(f"{BERT_REPOS[0]} tokenizer ({'; '.join(tok.searched)})")
    else:
        found.append(str(tok.found))
    if missing:
        return False, "missing " + " and ".join(missing)
    return True, " + ".join(found)


register_reward(
    "imagereward",
    "ImageReward (BLIP ViT-L + BERT + MLP), differentiable",
    needs=f"{IMAGEREWARD_FILE} + {IMAGEREWARD_CONFIG} ({IMAGEREWARD_REPO}) + bert-base-uncased",
    is_available=imagereward_available,
)(ImageReward)
