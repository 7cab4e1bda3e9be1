"""The interface every benchmarked method implements, and the task it is given.

A method turns one :class:`Task` (pipeline, prompt, seed, target reward and
the shared sampling settings) into one image. The runner measures its cost
from outside (:mod:`nulltta.bench.cost`), so a method only generates.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..adapters import PipelineAdapter, make_adapter
from ..rewards import Reward

__all__ = ["Method", "MethodOutput", "Task", "compressed_rate", "derived_seed"]

# The release's ramp (c = 0.008 over 100 steps) reaches n_max, and lambda2
# reaches 0, at step ln 2 / ln(1.008) = 86.99, i.e. 87% of the way.
_RAMP_FRACTION = math.log(2) / math.log(1.008) / 100


def compressed_rate(num_steps: int) -> float:
    """Schedule rate ``c`` that gives a ``num_steps`` run the release's 100-step ramp shape.

    ``c = 2^(1 / (0.87 T)) - 1``: 0.008 at T = 100, 0.0406 at T = 20. Used for
    the inner-step ramp and lambda2 annealing of Null-TTA and for DAS's
    tempering, so that runs with fewer steps keep the paper's schedule shape.
    """
    return 2 ** (1 / (_RAMP_FRACTION * num_steps)) - 1


def derived_seed(seed: int, index: int) -> int:
    """Seed of the ``index``-th extra draw of a run (index 0 is ``seed`` itself)."""
    return seed if index == 0 else (seed * 1_000_003 + index * 7_919) % 2**31


@dataclass(frozen=True)
class Task:
    """One image to generate, with what every method shares.

    Attributes
    ----------
    pipeline : diffusers pipeline
        Shared by every method, never modified.
    prompt : str
    seed : int
        Seeds the method's single generator (x_T and every noise draw).
    reward : Reward
        The target reward: the only reward a method may look at.
    num_inference_steps : int
        Sampling steps T of the ancestral sampler (DDIM, eta = 1).
    guidance_scale : float or None
        CFG scale; None takes the model family's default (7.5 for SD).
    height, width : int or None
        Image size; None takes the model's native size.

    """

    pipeline: Any
    prompt: str
    seed: int
    reward: Reward
    num_inference_steps: int = 100
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None

    def adapter(self) -> PipelineAdapter:
        """A fresh adapter (own DDIM eta = 1 scheduler) around the pipeline."""
        return make_adapter(self.pipeline, scheduler="ddim", eta=1.0)

    def generator(self, index: int = 0) -> torch.Generator:
        """Generator for draw ``index`` of this task (see :func:`derived_seed`)."""
        device = next(self.pipeline.unet.parameters()).device
        return torch.Generator(device).manual_seed(derived_seed(self.seed, index))


@dataclass
class MethodOutput:
    """What a method returns.

    Attributes
    ----------
    image : Tensor
        ``(1, 3, H, W)`` float in [0, 1].
    info : dict
        JSON-safe method-specific facts (inner steps run, resamplings, ...).

    """

    image: Tensor
    info: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Base class of the benchmarked methods.

    Subclasses are dataclasses whose fields are the method's settings (their
    constructor only stores them), set ``name`` and ``follows`` and implement
    :meth:`run`.
    """

    name: ClassVar[str] = ""
    follows: ClassVar[str] = ""

    @abstractmethod
    def run(self, task: Task) -> MethodOutput:
        """Generate one image for ``task``."""

    def settings(self) -> dict[str, Any]:
        """The method's settings as a JSON-safe dict."""
        return asdict(self)  # type: ignore[call-overload]

    def default_settings(self) -> dict[str, Any]:
        """Each setting's default value (fields without one are left out)."""
        return {
            f.name: f.default
            for f in fields(self)  # type: ignore[arg-type]
            if f.default is not MISSING
        }
