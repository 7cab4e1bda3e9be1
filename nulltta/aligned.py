"""What a finished batch of trajectories gives the estimator, one image each.

:func:`finish_batch` decodes and scores the final latents of a batch and
reads every trajectory's history and phi' trajectory off the device, once.
:func:`check_prompts_and_seeds` turns ``fit``'s arguments into one
``(prompt, seed)`` per image, with errors that name the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from .history import History
from .images import to_pil
from .module import NullTextModule

__all__ = ["AlignedImage", "check_prompts_and_seeds", "finish_batch"]


@dataclass
class AlignedImage:
    """One trajectory's result.

    Attributes
    ----------
    prompt : str
    pixels : Tensor
        ``(1, 3, H, W)`` in [0, 1], on the CPU.
    image : PIL.Image.Image
    reward : float
        Target reward of ``pixels``.
    history : History
        One row per denoising step.
    phi : Tensor
        phi' after every step, ``(T, 1, ...)``.
    latents : Tensor
        The final latent (no batch dimension).

    """

    prompt: str
    pixels: Tensor
    image: Image.Image
    reward: float
    history: History
    phi: Tensor
    latents: Tensor


def finish_batch(module: NullTextModule) -> list[AlignedImage]:
    """Decode and score the final latents of every trajectory of ``module``."""
    traj = module.trajectory
    with torch.no_grad():
        pixels = module.adapter.decode(traj.latents).float().cpu()
        scores = module.score_images(pixels.to(traj.latents.device)).cpu().tolist()
    histories = traj.histories()
    phis = traj.phi_trajectories()
    latents = traj.latents.detach().cpu()
    images = to_pil(pixels)
    return [
        AlignedImage(
            prompt=traj.prompts[b],
            pixels=pixels[b : b + 1],
            image=images[b],
            reward=float(scores[b]),
            history=History(histories[b]),
            phi=phis[b],
            latents=latents[b],
        )
        for b in range(traj.batch_size)
    ]


def check_prompts_and_seeds(
    prompts: str | Sequence[str], seeds: Sequence[int] | None, default_seed: int
) -> tuple[list[str], list[int]]:
    """One prompt and one seed per image, validated.

    A single string gets ``default_seed`` (and no ``seeds``); a sequence gets
    ``seeds`` (one per prompt) or ``default_seed`` for every prompt.

    Raises
    ------
    ValueError
        For an empty prompt or list, or a seed count that does not match.

    """
    if isinstance(prompts, str):
        if seeds is not None:
            raise ValueError(
                "seeds is for several prompts; for one prompt set the aligner's seed "
                "(NullTextAligner(seed=...)), or pass a list: fit([prompt] * n, seeds=[...])"
            )
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("fit() got no prompts; pass a prompt or a non-empty list of prompts")
    for index, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                f"prompt {index} is {prompt!r}: every prompt must be a non-empty string"
            )
    if seeds is None:
        return prompts, [default_seed] * len(prompts)
    seeds = list(seeds)
    if len(seeds) != len(prompts):
        raise ValueError(
            f"got {len(seeds)} seeds for {len(prompts)} prompts; pass one seed per prompt "
            "(e.g. fit([p for p in prompts for s in seeds], seeds=[s for p in prompts for s in "
            "seeds]) for every prompt with every seed)"
        )
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seeds must be integers, got {seed!r}")
    return prompts, seeds
