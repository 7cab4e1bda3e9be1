"""Rewards: torchmetrics metrics that score images in [0, 1], by name or as objects."""

from .aesthetic import Aesthetic, load_aesthetic_head
from .base import CallableReward, Reward, RewardInputError, check_images, normalize_prompts
from .clipscore import CLIPScore, CLIPSimilarityReward
from .combined import WeightedReward, weighted_sum
from .functional import (
    aesthetic_score,
    clip_score_from_embeddings,
    cosine_similarity,
    hps_score,
    imagereward_normalize,
    pickscore_from_embeddings,
)
from .hpsv2 import HPSv2, load_hps_model
from .image_stats import Brightness, Contrast, Saturation, luminance
from .imagereward import ImageReward, load_imagereward_model, load_imagereward_tokenizer
from .jpeg import JpegCompressibility, jpeg_size_kb
from .listing import format_reward_table
from .loading import WEIGHTS_DIR_ENV, RewardWeightsError, RewardWeightsNotFoundError
from .pickscore import PickScore
from .pretrained import MLPHead, PretrainedReward
from .registry import RewardSpec, available_rewards, get_reward, register_reward, reward_specs

__all__ = [
    "WEIGHTS_DIR_ENV",
    "Aesthetic",
    "Brightness",
    "CLIPScore",
    "CLIPSimilarityReward",
    "CallableReward",
    "Contrast",
    "HPSv2",
    "ImageReward",
    "JpegCompressibility",
    "MLPHead",
    "PickScore",
    "PretrainedReward",
    "Reward",
    "RewardInputError",
    "RewardSpec",
    "RewardWeightsError",
    "RewardWeightsNotFoundError",
    "Saturation",
    "WeightedReward",
    "aesthetic_score",
    "available_rewards",
    "check_images",
    "clip_score_from_embeddings",
    "cosine_similarity",
    "format_reward_table",
    "get_reward",
    "hps_score",
    "imagereward_normalize",
    "jpeg_size_kb",
    "load_aesthetic_head",
    "load_hps_model",
    "load_imagereward_model",
    "load_imagereward_tokenizer",
    "luminance",
    "normalize_prompts",
    "pickscore_from_embeddings",
    "register_reward",
    "reward_specs",
    "weighted_sum",
]

from nulltta.shapes import rewards as _shapes_rewards  # noqa: E402, F401  (registers shapes-*)
