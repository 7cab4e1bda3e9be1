"""The equations of Null-TTA, one pure function each (see ``docs/concepts/method.md``).

Notation: ``x_t`` latent at sampling step t, ``abar_t`` cumulative product of
the training schedule, ``s`` the CFG scale, ``phi`` the null-text embedding and
``phi'`` its optimised copy. Every function works on batches: the leading
dimension is the batch, and per-sample quantities are returned with shape
``(B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "StepCoefficients",
    "annealing_schedule",
    "cfg_combine",
    "embedding_kl",
    "exact_local_kl",
    "inner_steps_schedule",
    "paper_kl_weight",
    "paper_local_kl",
    "squared_norm",
    "to_epsilon",
    "transition_mean",
    "tweedie_x0",
    "zeroth_order_gradient",
]


@dataclass(frozen=True)
class StepCoefficients:
    """Everything one sampling step from t to its predecessor p needs.

    The forward process is ``x_t = signal * x0 + noise * eps`` and the reverse
    transition is Gaussian, ``x_p ~ N(a * x_t + b * eps~, std^2 I)``, with
    ``eps~`` the CFG noise prediction.

    Attributes
    ----------
    timestep : int
        Training timestep t.
    signal, noise : float
        ``sqrt(abar_t)`` and ``sqrt(1 - abar_t)`` for variance-preserving models.
    a, b : float
        Coefficients of the transition mean ``mu = a x_t + b eps~``.
    std : float
        Standard deviation ``sigma_t`` of the transition.
    paper_kl_weight : float
        ``lam_t`` of the released code's KL weighting (see :func:`paper_kl_weight`).

    """

    timestep: int
    signal: float
    noise: float
    a: float
    b: float
    std: float
    paper_kl_weight: float


def squared_norm(x: Tensor) -> Tensor:
    """Return ``||x_b||^2`` summed over every dimension but the batch: shape ``(B,)``."""
    return x.float().pow(2).flatten(1).sum(1)


def cfg_combine(eps_uncond: Tensor, eps_cond: Tensor, guidance_scale: float) -> Tensor:
    """Classifier-free guidance.

    ``eps~ = eps_u + s (eps_c - eps_u) = (1 - s) eps_u + s eps_c``; written in
    the first form, as diffusers pipelines do, so results match them to the bit.
    """
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def to_epsilon(
    model_output: Tensor, sample: Tensor, signal: float, noise: float, prediction_type: str
) -> Tensor:
    """Convert a model output to a noise prediction ``eps``.

    With ``x_t = alpha x0 + sigma eps`` (``alpha = signal``, ``sigma = noise``):

    - ``"epsilon"``: ``eps = output``;
    - ``"v_prediction"``: ``v = alpha eps - sigma x0`` so ``eps = alpha v + sigma x_t``
      (for variance-preserving schedules, ``alpha^2 + sigma^2 = 1``);
    - ``"sample"``: ``x0 = output`` so ``eps = (x_t - alpha x0) / sigma``.

    All three are affine in the output, so CFG commutes with the conversion.
    """
    if prediction_type == "epsilon":
        return model_output
    if prediction_type == "v_prediction":
        return signal * model_output + noise * sample
    if prediction_type == "sample":
        return (sample - signal * model_output) / noise
    raise ValueError(
        f"unknown prediction_type {prediction_type!r}; "
        "expected 'epsilon', 'v_prediction' or 'sample'"
    )


def tweedie_x0(sample: Tensor, eps: Tensor, signal: float, noise: float) -> Tensor:
    """Tweedie's posterior-mean estimate of the clean latent.

    ``x0_hat = (x_t - sqrt(1 - abar_t) eps~) / sqrt(abar_t)``, i.e.
    ``(x_t - noise * eps) / signal``.
    """
    return (sample - noise * eps) / signal


def transition_mean(sample: Tensor, eps: Tensor, coefficients: StepCoefficients) -> Tensor:
    """Mean of the ancestral transition, ``mu = a_t x_t + b_t eps~``."""
    return coefficients.a * sample + coefficients.b * eps


def exact_local_kl(
    eps_uncond: Tensor,
    eps_uncond_ref: Tensor,
    guidance_scale: float,
    coefficients: StepCoefficients,
) -> Tensor:
    """Closed-form KL between the transitions under ``phi'`` and under ``phi``.

    Both are Gaussians with the same variance ``sigma_t^2`` whose means differ
    by ``b_t (eps~(phi') - eps~(phi)) = b_t (1 - s) (eps_u - eps_u0)``, so

    ``KL_t = b_t^2 (1 - s)^2 ||eps_u - eps_u0||^2 / (2 sigma_t^2)``.

    Returns
    -------
    Tensor
        Shape ``(B,)``.

    """
    if coefficients.std <= 0:
        raise ValueError(
            "the exact local KL needs a stochastic transition (sigma_t > 0); use eta > 0 "
            "or kl_mode='paper'"
        )
    scale = coefficients.b**2 * (1 - guidance_scale) ** 2 / (2 * coefficients.std**2)
    return scale * squared_norm(eps_uncond - eps_uncond_ref)


def paper_kl_weight(beta_t: float, alpha_bar_t: float) -> float:
    """The released code's per-step weight ``lam_t = beta_t / (2 (1 - beta_t) (1 - abar_t))``.

    ``beta_t`` and ``abar_t`` are read from the 1000-step training schedule at t.
    """
    return beta_t / (2 * (1 - beta_t) * (1 - alpha_bar_t))


def paper_local_kl(
    eps_uncond: Tensor,
    eps_uncond_ref: Tensor,
    guidance_scale: float,
    coefficients: StepCoefficients,
) -> Tensor:
    """The local KL as released: ``s^2 lam_t ||eps_u - eps_u0||^2``, shape ``(B,)``."""
    return (
        guidance_scale**2 * coefficients.paper_kl_weight * squared_norm(eps_uncond - eps_uncond_ref)
    )


def embedding_kl(null_embedding: Tensor, null_reference: Tensor, sigma_phi_sq: float) -> Tensor:
    """KL between Gaussians centred on ``phi'`` and ``phi``.

    ``KL = ||phi' - phi||^2 / (2 sigma_phi^2)``, shape ``(B,)``.
    """
    return squared_norm(null_embedding - null_reference) / (2 * sigma_phi_sq)


def inner_steps_schedule(
    num_steps: int, n_min: int, n_max: int, rate: float = 0.008, order: str = "ramp_up"
) -> list[int]:
    """Inner gradient steps at each sampling step index ``i = 0 .. T-1``.

    ``"ramp_up"`` (the release's): ``n_i = round(n_min + (n_max - n_min)
    min(1, (1 + c)^i - 1))``, a ramp from ``n_min`` at the noisiest step to
    ``n_max``, reached at ``i = ln 2 / ln(1 + c)`` (87 for c = 0.008).
    ``"ramp_down"``: the same steps in reverse, ``n_i = n^up_{T-1-i}``, so the
    noisiest steps get the most and the total is unchanged.
    """
    ramp = [min(1.0, (1 + rate) ** i - 1) for i in range(num_steps)]
    schedule = [int(round(n_min + (n_max - n_min) * r)) for r in ramp]
    if order == "ramp_up":
        return schedule
    if order == "ramp_down":
        return schedule[::-1]
    raise ValueError(f"order={order!r}; choose 'ramp_up' (the release's) or 'ramp_down'")


def annealing_schedule(num_steps: int, rate: float = 0.008) -> list[float]:
    """Multiplier of both KL terms at step index i: ``tau_i = max(2 - (1 + c)^i, 0)``.

    Starts at 1 and reaches 0 where the inner-step ramp reaches ``n_max``, so
    the last steps optimise the reward alone.
    """
    return [max(2.0 - (1 + rate) ** i, 0.0) for i in range(num_steps)]


def zeroth_order_gradient(
    objective: Callable[[Tensor], Tensor],
    params: Tensor,
    num_samples: int = 4,
    smoothing: float = 0.02,
    generator: torch.Generator | None = None,
    directions: Tensor | None = None,
) -> Tensor:
    """Gaussian-smoothing estimate of the gradient of a black-box objective.

    ``grad J(phi) ~ 1 / (K mu) sum_k [J(phi + mu v_k) - J(phi)] v_k`` with
    ``v_k ~ N(0, I)``.

    Parameters
    ----------
    objective : callable
        Maps a batch of parameter tensors, shape ``(N, *params.shape[1:])``
        for ``params`` of shape ``(B, ...)``, to ``N`` objective values. It is
        called once, with ``N = (K + 1) B`` rows: ``phi`` first, then the
        ``K`` perturbations of every row, so one batched pass does the work.
    params : Tensor
        ``(B, ...)``: one parameter tensor per sample.
    num_samples : int
        ``K``, the number of random directions.
    smoothing : float
        ``mu``, the perturbation radius.
    generator : torch.Generator, optional
        Source of the directions ``v_k``.
    directions : Tensor, optional
        ``(K, B, ...)`` directions to use instead of drawing them (so that each
        of ``B`` trajectories can draw its own from its own generator).

    Returns
    -------
    Tensor
        The estimate, same shape as ``params``.

    """
    if num_samples < 1 or smoothing <= 0:
        raise ValueError("zeroth_order_gradient needs num_samples >= 1 and smoothing > 0")
    if directions is None:
        directions = torch.randn(
            (num_samples, *params.shape),
            generator=generator,
            device=params.device,
            dtype=params.dtype,
        )
    elif directions.shape != (num_samples, *params.shape):
        raise ValueError(
            f"directions of shape {tuple(directions.shape)} do not match "
            f"(num_samples, *params.shape) = {(num_samples, *params.shape)}"
        )
    perturbed = params.unsqueeze(0) + smoothing * directions
    batch = torch.cat([params, perturbed.flatten(0, 1)], dim=0)
    values = objective(batch).reshape(num_samples + 1, params.shape[0])
    differences = values[1:] - values[:1]  # (K, B)
    weights = differences.reshape(num_samples, params.shape[0], *[1] * (params.ndim - 1))
    return (weights * directions).sum(0) / (num_samples * smoothing)


def ddim_coefficients(
    alpha_bar_t: float, alpha_bar_prev: float, eta: float
) -> tuple[float, float, float]:
    """DDIM step as ``mu = a x_t + b eps``, ``std`` (Song et al. eq. 12).

    ``sigma = eta sqrt((1 - abar_p) / (1 - abar_t)) sqrt(1 - abar_t / abar_p)``,
    ``a = sqrt(abar_p / abar_t)``,
    ``b = sqrt(1 - abar_p - sigma^2) - sqrt(abar_p (1 - abar_t) / abar_t)``.
    """
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
    std = eta * math.sqrt(max(variance, 0.0))
    a = math.sqrt(alpha_bar_prev / alpha_bar_t)
    b = math.sqrt(max(1 - alpha_bar_prev - std**2, 0.0)) - math.sqrt(
        alpha_bar_prev * (1 - alpha_bar_t) / alpha_bar_t
    )
    return a, b, std


def ddpm_coefficients(
    alpha_bar_t: float, alpha_bar_prev: float, variance_type: str = "fixed_small"
) -> tuple[float, float, float]:
    """DDPM ancestral step as ``mu = a x_t + b eps``, ``std`` (Ho et al. eq. 7).

    With ``alpha_t = abar_t / abar_p`` and ``beta_t = 1 - alpha_t``:
    ``a = 1 / sqrt(alpha_t)``, ``b = -beta_t / (sqrt(alpha_t) sqrt(1 - abar_t))``,
    ``std^2 = beta_t (1 - abar_p) / (1 - abar_t)`` ("fixed_small") or ``beta_t``
    ("fixed_large").
    """
    alpha_t = alpha_bar_t / alpha_bar_prev
    beta_t = 1 - alpha_t
    a = 1 / math.sqrt(alpha_t)
    b = -beta_t / (math.sqrt(alpha_t) * math.sqrt(1 - alpha_bar_t))
    if variance_type == "fixed_small":
        variance = max(beta_t * (1 - alpha_bar_prev) / (1 - alpha_bar_t), 1e-20)
    elif variance_type == "fixed_large":
        variance = beta_t
    else:
        raise ValueError(
            f"DDPM variance_type {variance_type!r} is not Gaussian-fixed; use 'fixed_small' or "
            "'fixed_large'"
        )
    return a, b, math.sqrt(variance)
