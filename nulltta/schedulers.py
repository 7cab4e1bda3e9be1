"""Schedulers the method can step: which ones, and their affine step coefficients.

Null-TTA evaluates the denoiser several times at one timestep and needs the
transition ``x_p ~ N(a x_t + b eps~, sigma^2)`` in closed form. DDIM with
``eta > 0`` and DDPM qualify. Multistep solvers (PNDM, DPM-Solver++, Euler,
UniPC, ...) keep state between calls and are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler

from .equations import StepCoefficients, ddim_coefficients, ddpm_coefficients, paper_kl_weight

__all__ = [
    "SUPPORTED_SCHEDULERS",
    "UnsupportedSchedulerError",
    "make_scheduler",
    "previous_timestep",
    "step_coefficients",
]

SUPPORTED_SCHEDULERS = (DDIMScheduler, DDPMScheduler)


class UnsupportedSchedulerError(ValueError):
    """The scheduler cannot be stepped repeatedly or has no Gaussian transition."""


def make_scheduler(choice: Any, pipeline_scheduler: Any) -> DDIMScheduler | DDPMScheduler:
    """Return a fresh scheduler for the aligner, never the pipeline's own object.

    Parameters
    ----------
    choice : {"ddim", "ddpm", "pipeline"} or scheduler instance
        ``"ddim"`` (the release's sampler) and ``"ddpm"`` build that class from
        the pipeline scheduler's config; ``"pipeline"`` copies the pipeline's
        scheduler, which must be DDIM or DDPM; an instance is copied likewise.
    pipeline_scheduler : SchedulerMixin
        The pipeline's scheduler, whose training schedule is reused.

    Raises
    ------
    UnsupportedSchedulerError
        For multistep solvers and configurations without an affine Gaussian step.

    """
    if isinstance(choice, str):
        key = choice.lower()
        # A config from another scheduler class (Euler, PNDM, ...) may not say
        # whether to clip x0; DDIM/DDPM would then default to clipping, which
        # latent models never use, so the sampler built here does not clip.
        overrides = {} if "clip_sample" in pipeline_scheduler.config else {"clip_sample": False}
        if key == "ddim":
            scheduler = DDIMScheduler.from_config(pipeline_scheduler.config, **overrides)
        elif key == "ddpm":
            scheduler = DDPMScheduler.from_config(pipeline_scheduler.config, **overrides)
        elif key == "pipeline":
            scheduler = _copy_supported(pipeline_scheduler)
        else:
            raise UnsupportedSchedulerError(
                f"unknown scheduler {choice!r}; use 'ddim' (default), 'ddpm', 'pipeline', or pass "
                "a DDIMScheduler/DDPMScheduler instance"
            )
    else:
        scheduler = _copy_supported(choice)
    _check_affine(scheduler)
    return scheduler


def _copy_supported(scheduler: Any) -> DDIMScheduler | DDPMScheduler:
    if not isinstance(scheduler, SUPPORTED_SCHEDULERS):
        raise UnsupportedSchedulerError(
            f"{type(scheduler).__name__} cannot be used: Null-TTA steps the sampler several times "
            "per timestep and needs a Gaussian ancestral transition. Multistep solvers keep state "
            "between calls. Use scheduler='ddim' (the default, built from your pipeline's "
            "training schedule) or a DDIMScheduler/DDPMScheduler."
        )
    return type(scheduler).from_config(scheduler.config)


def _check_affine(scheduler: DDIMScheduler | DDPMScheduler) -> None:
    config = scheduler.config
    if config.get("thresholding", False) or config.get("clip_sample", False):
        raise UnsupportedSchedulerError(
            f"{type(scheduler).__name__} has clip_sample={config.get('clip_sample')} / "
            f"thresholding={config.get('thresholding')}: clipping x0 makes the transition "
            "non-affine in the noise prediction. Latent models do not need it: build the "
            "scheduler with clip_sample=False, thresholding=False."
        )
    if isinstance(scheduler, DDPMScheduler) and config.variance_type not in (
        "fixed_small",
        "fixed_large",
    ):
        raise UnsupportedSchedulerError(
            f"DDPM variance_type {config.variance_type!r} is not supported; use 'fixed_small' "
            "or 'fixed_large'"
        )


def previous_timestep(scheduler: DDIMScheduler | DDPMScheduler, timestep: int) -> int:
    """The timestep the scheduler steps to from ``timestep`` (negative at the end)."""
    if isinstance(scheduler, DDIMScheduler):
        return int(timestep - scheduler.config.num_train_timesteps // scheduler.num_inference_steps)
    return int(scheduler.previous_timestep(timestep))


def step_coefficients(
    scheduler: DDIMScheduler | DDPMScheduler, timestep: int, eta: float = 1.0
) -> StepCoefficients:
    """Affine coefficients of the scheduler's own step from ``timestep``.

    Reads ``abar`` exactly as the scheduler's ``step()`` does, including
    DDIM's ``final_alpha_cumprod`` and DDPM's unit ``abar`` past the end, so
    that ``a x_t + b eps + std z`` reproduces ``scheduler.step``.
    """
    timestep = int(timestep)
    alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
    alpha_bar_t = float(alphas_cumprod[timestep])
    prev = previous_timestep(scheduler, timestep)
    if isinstance(scheduler, DDIMScheduler):
        alpha_bar_prev = (
            float(alphas_cumprod[prev]) if prev >= 0 else float(scheduler.final_alpha_cumprod)
        )
        a, b, std = ddim_coefficients(alpha_bar_t, alpha_bar_prev, eta)
    else:
        alpha_bar_prev = float(alphas_cumprod[prev]) if prev >= 0 else 1.0
        a, b, std = ddpm_coefficients(alpha_bar_t, alpha_bar_prev, scheduler.config.variance_type)
        if timestep == 0:  # DDPM adds no noise on its last step
            std = 0.0
    beta_t = float(scheduler.betas[timestep])
    return StepCoefficients(
        timestep=timestep,
        signal=alpha_bar_t**0.5,
        noise=(1 - alpha_bar_t) ** 0.5,
        a=a,
        b=b,
        std=std,
        paper_kl_weight=paper_kl_weight(beta_t, alpha_bar_t),
    )
