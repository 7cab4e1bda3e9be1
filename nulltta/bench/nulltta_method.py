"""Null-TTA itself, and greedy candidate selection alone (Null-TTA with no phi' updates)."""

from __future__ import annotations

from dataclasses import dataclass

from ..aligner import NullTextAligner, to_tensor
from ..config import MODEL_DEPENDENT_SETTINGS
from .base import Method, MethodOutput, Task, compressed_rate

__all__ = ["GreedySelection", "NullTTA"]


def _fit(task: Task, **settings: object) -> NullTextAligner:
    aligner = NullTextAligner(
        task.pipeline,
        task.reward,
        guidance_scale=task.guidance_scale,
        num_inference_steps=task.num_inference_steps,
        height=task.height,
        width=task.width,
        seed=task.seed,
        profile_memory=False,  # the runner measures memory; the profiler would reset its peak
        **settings,
    )
    return aligner.fit(task.prompt)


@dataclass
class NullTTA(Method):
    """Null-TTA through :class:`~nulltta.NullTextAligner` (``docs/concepts/method.md``).

    Parameters
    ----------
    n_min, n_max : int
        Inner-step ramp (5 and 25 as released; the paper's Table 1 uses n_max = 55).
    schedule_rate : float or None
        ``c`` of the ramp and of lambda2 annealing; None compresses the
        release's 100-step shape to the task's T (:func:`compressed_rate`).
    inner_steps_order : {"ramp_up", "ramp_down"} or None
        The release's ramp, or the same inner steps in reverse (most at the
        noisiest steps); None is the model's default.
    num_candidates : int
        Greedy K (3).
    null_parameterisation : {"embedding", "text_manifold"}
        phi' free (the paper's) or ``text_encoder(e')`` (:mod:`nulltta.parameterisation`).
    learning_rate : float or None
        Adam's step size; None is the model's default.
    reward_weight, sigma_phi_sq : float
        As in :class:`~nulltta.config.AlignmentConfig`.
    kl_weight : float or None
        lambda2; None is the model's default (:class:`~nulltta.NullTextAligner`).
    kl_mode : {"paper", "exact"}
        As in :class:`~nulltta.config.AlignmentConfig`.
    anneal_kl : bool or None
        lambda2 annealing to zero (True as released); None is the model's default.
    gradient_checkpointing, autocast_dtype, vae_autocast_dtype, decode_scale,
    early_stop_patience, early_stop_tolerance, optimize_every
        Speed options (:mod:`nulltta.speedups`), off by default (float32, so
        every method of a benchmark runs at the same precision).

    """

    name = "nulltta"
    follows = "the authors' release, through NullTextAligner (the model's defaults)"
    n_min: int = 5
    n_max: int = 25
    schedule_rate: float | None = None
    inner_steps_order: str | None = None
    num_candidates: int = 3
    null_parameterisation: str = "embedding"
    learning_rate: float | None = None
    kl_weight: float | None = None
    kl_mode: str = "paper"
    sigma_phi_sq: float = 0.01
    anneal_kl: bool | None = None
    reward_weight: float | None = None
    gradient_checkpointing: bool = False
    autocast_dtype: str | None = None
    vae_autocast_dtype: str | None = None
    decode_scale: float = 1.0
    early_stop_patience: int | None = None
    early_stop_tolerance: float = 0.0
    optimize_every: int = 1

    def run(self, task: Task) -> MethodOutput:
        """Fit phi' for the task's prompt and seed; return the aligned image."""
        settings = self.settings()
        if settings["schedule_rate"] is None:
            settings["schedule_rate"] = compressed_rate(task.num_inference_steps)
        aligner = _fit(task, **settings)
        history = aligner.history_
        config = aligner.config_
        info = {
            "inner_steps": int(sum(history[:, "inner_steps"])),
            "skipped_steps": int(sum(history[:, "skipped_steps"])),
            "final_phi_distance": history[-1]["phi_distance"],
            "schedule_rate": settings["schedule_rate"],
            # What the model's defaults resolved to (the spec may leave them None).
            "resolved": {key: getattr(config, key) for key in MODEL_DEPENDENT_SETTINGS},
        }
        return MethodOutput(to_tensor(aligner.image_), info)


@dataclass
class GreedySelection(Method):
    """Greedy selection of K candidates per step, with phi' left at phi.

    Null-TTA with zero inner steps: isolates what the selection alone buys.

    Parameters
    ----------
    num_candidates : int, default=3
        K candidates for x_T and for every x_{t-1}, each scored by the target
        reward of its Tweedie estimate.

    """

    name = "greedy"
    follows = "Null-TTA's greedy selection (step 5 of the method) without optimisation"
    num_candidates: int = 3

    def run(self, task: Task) -> MethodOutput:
        """Sample with K-candidate greedy selection and no inner steps."""
        aligner = _fit(task, n_min=0, n_max=0, num_candidates=self.num_candidates)
        return MethodOutput(to_tensor(aligner.image_))
