"""Rewards: torchmetrics metrics that score images in [0, 1], by name or as objects."""

from .base import CallableReward, Reward, RewardInputError, check_images, normalize_prompts
from .combined import WeightedReward, weighted_sum
from .image_stats import Brightness, Contrast, Saturation, luminance
from .jpeg import JpegCompressibility, jpeg_size_kb
from .registry import RewardSpec, available_rewards, get_reward, register_reward, reward_specs

__all__ = [
    "Brightness",
    "CallableReward",
    "Contrast",
    "JpegCompressibility",
    "Reward",
    "RewardInputError",
    "RewardSpec",
    "Saturation",
    "WeightedReward",
    "available_rewards",
    "check_images",
    "get_reward",
    "jpeg_size_kb",
    "luminance",
    "normalize_prompts",
    "register_reward",
    "reward_specs",
    "weighted_sum",
]
