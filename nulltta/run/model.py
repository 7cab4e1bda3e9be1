"""One rank's model and rewards, loaded once and checked before the first image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..adapters import make_adapter
from ..images import to_tensor
from ..rewards import get_reward
from .job import RunJob
from .prompts import check_prompts_for_model

__all__ = ["LoadedModel", "load_model", "score_heldout"]


@dataclass
class LoadedModel:
    """One rank's aligner (its pipeline loaded), rewards and prompt check.

    Attributes
    ----------
    aligner : NullTextAligner
        Its ``reward`` is the target reward, resolved.
    reward_name : str
        The target reward's name.
    heldout : dict of str to Reward
        The held-out rewards (and the gold one), on the model's device.
    gold : str or None
        The model's gold reward's name, where it has one.
    truncated : set of int
        Prompt indices the text encoder will cut (``--allow-truncation``).

    """

    aligner: Any
    reward_name: str
    heldout: dict[str, Any]
    gold: str | None
    truncated: set[int]


def load_model(job: RunJob, device: torch.device, show_progress: bool) -> LoadedModel:
    """Load the model and the rewards on ``device``, and check the prompts against the model.

    Raises
    ------
    RunError
        For prompts the model cannot take.
    ValueError, FileNotFoundError
        For an unknown reward, a missing model or a corrupt weights file.

    """
    from ..aligner import NullTextAligner

    kwargs = {**job.aligner_kwargs, "device": str(device)}
    aligner = NullTextAligner(**kwargs, batch_size=job.batch_size, progress=show_progress)
    pipeline = aligner.initialize_pipeline()
    adapter = make_adapter(pipeline, scheduler=aligner.scheduler, eta=aligner.eta)
    profile = aligner.initialize_profile(adapter)
    truncated = check_prompts_for_model(job.prompt_set, pipeline, profile, job.allow_truncation)
    reward_name = job.aligner_kwargs.get("reward") or profile.reward
    # Resolved once and handed to the aligner as an object, so that a learned
    # reward is not built again at every batch's fit.
    aligner.set_params(reward=get_reward(reward_name))
    names = job.heldout
    if names is None:
        names = [*profile.heldout, *([profile.gold] if profile.gold else [])]
    heldout = {name: get_reward(name).to(adapter.device).eval() for name in names}
    return LoadedModel(aligner, reward_name, heldout, profile.gold, truncated)


def score_heldout(
    rewards: dict[str, Any], images: list[Any], prompts: list[str]
) -> tuple[dict[str, list], dict[str, str]]:
    """Held-out rewards of saved images: ``(name -> scores, name -> error)``.

    The images are scored as saved (8-bit), as anyone reading the PNGs would
    score them. A held-out reward that raises gives None for these images and
    its error; the images are kept.
    """
    if not rewards or not images:
        return {}, {}
    pixels = to_tensor(images)
    scores: dict[str, list] = {}
    errors: dict[str, str] = {}
    for name, reward in rewards.items():
        try:
            with torch.no_grad():
                values = reward(pixels.to(reward.device), prompts)
            scores[name] = [float(v) for v in values.float().cpu()]
        except torch.OutOfMemoryError:
            raise
        except Exception as error:  # recorded in the row; the image is kept
            scores[name] = [None] * len(images)
            errors[name] = f"{type(error).__name__}: {error}"
    return scores, errors
