"""Rectified-flow (flow-matching) equations for Null-TTA, one pure function each.

Derived here; the paper tested SD1.5 and SDXL only and names flow matching as
future work. The forward process of rectified flow (SD3) is the
interpolation ``x_t = (1 - sigma) x0 + sigma eps``: a Gaussian marginal
``q(x_t | x0) = N(signal x0, noise^2 I)`` with ``signal = 1 - sigma`` and
``noise = sigma``, not variance preserving. The transformer predicts the
velocity ``v = eps - x0``, so that

- ``x0 = x_t - sigma v`` (Tweedie), ``eps = x_t + (1 - sigma) v``;
- ``x_t = 1 * x0 + sigma * v``: in the velocity parameterisation the core's
  identity ``x_t = signal x0 + noise * prediction`` holds with ``signal = 1``
  and ``noise = sigma``, finite even at ``sigma = 1`` where ``1 - sigma = 0``
  and an epsilon parameterisation would divide by zero.

The stochastic sampler is DDIM's family of Gaussian transitions written for
any ``(signal, noise)`` pair (:func:`gaussian_step_coefficients`); the flow
versions express its mean in the velocity (:func:`flow_step_coefficients`).
"""

from __future__ import annotations

import math

from torch import Tensor

__all__ = [
    "flow_paper_kl_weight",
    "flow_step_coefficients",
    "forward_step_variance",
    "gaussian_step_coefficients",
    "one_step_kl_weight",
    "posterior_std",
    "velocity_to_epsilon",
    "velocity_to_x0",
]


def velocity_to_x0(velocity: Tensor, sample: Tensor, sigma: float) -> Tensor:
    """Clean-latent estimate from a velocity: ``x0 = x_t - sigma v``."""
    return sample - sigma * velocity


def velocity_to_epsilon(velocity: Tensor, sample: Tensor, sigma: float) -> Tensor:
    """Noise estimate from a velocity: ``eps = x_t + (1 - sigma) v``."""
    return sample + (1 - sigma) * velocity


def posterior_std(
    signal_t: float, noise_t: float, signal_p: float, noise_p: float, eta: float = 1.0
) -> float:
    """Standard deviation of the DDIM-family step from t to p, for any Gaussian marginals.

    ``std = eta * noise_p * sqrt(1 - (signal_t noise_p / (signal_p noise_t))^2)``.

    With ``eta = 1`` this is the exact posterior ``q(x_p | x_t, x0)`` of the
    Markov forward process that has the marginals ``N(signal x0, noise^2)``
    (the DDPM posterior); with ``eta = 0`` the step is deterministic (DDIM).
    For ``signal^2 + noise^2 = 1`` it is Song et al.'s
    ``eta sqrt((1 - abar_p) / (1 - abar_t)) sqrt(1 - abar_t / abar_p)``.
    """
    if noise_p == 0:
        return 0.0
    ratio = signal_t * noise_p / (signal_p * noise_t)
    return eta * noise_p * math.sqrt(max(1 - ratio**2, 0.0))


def gaussian_step_coefficients(
    signal_t: float, noise_t: float, signal_p: float, noise_p: float, eta: float = 1.0
) -> tuple[float, float, float]:
    """DDIM step for marginals ``N(signal x0, noise^2)``, as ``mu = a x_t + b eps``, ``std``.

    ``x_p = signal_p x0_hat + sqrt(noise_p^2 - std^2) eps_hat + std z`` with
    ``x0_hat = (x_t - noise_t eps_hat) / signal_t`` gives
    ``a = signal_p / signal_t`` and
    ``b = sqrt(noise_p^2 - std^2) - signal_p noise_t / signal_t``; if
    ``x_t`` has the marginal at t and ``eps_hat`` is the true noise, ``x_p``
    has the marginal at p for every ``std <= noise_p``.
    """
    std = posterior_std(signal_t, noise_t, signal_p, noise_p, eta)
    k = math.sqrt(max(noise_p**2 - std**2, 0.0))
    return signal_p / signal_t, k - signal_p * noise_t / signal_t, std


def flow_step_coefficients(
    sigma_t: float, sigma_p: float, eta: float = 1.0
) -> tuple[float, float, float]:
    """Rectified-flow step from ``sigma_t`` to ``sigma_p``: ``mu = a x_t + b v``, ``std``.

    The step of :func:`gaussian_step_coefficients` with ``signal = 1 - sigma``,
    ``noise = sigma``, rewritten in the velocity (``x0 = x_t - sigma_t v``,
    ``eps = x_t + (1 - sigma_t) v``), with ``k = sqrt(sigma_p^2 - std^2)``:

    ``a = (1 - sigma_p) + k``, ``b = k (1 - sigma_t) - (1 - sigma_p) sigma_t``.

    With ``eta = 0`` (``k = sigma_p``): ``a = 1``, ``b = sigma_p - sigma_t``,
    the flow ODE's Euler step ``x_p = x_t + (sigma_p - sigma_t) v``. With
    ``std = sigma_p`` (``k = 0``) it is ``x_p = (1 - sigma_p) x0 + sigma_p z``,
    the scheduler's ``stochastic_sampling`` step.
    """
    std = posterior_std(1 - sigma_t, sigma_t, 1 - sigma_p, sigma_p, eta)
    k = math.sqrt(max(sigma_p**2 - std**2, 0.0))
    return (1 - sigma_p) + k, k * (1 - sigma_t) - (1 - sigma_p) * sigma_t, std


def forward_step_variance(
    signal_t: float, noise_t: float, signal_p: float, noise_p: float
) -> float:
    """Variance of the Markov forward step ``q(x_t | x_p)``.

    ``var = noise_t^2 - (signal_t / signal_p)^2 noise_p^2``; for
    variance-preserving marginals with ``p = t - 1`` this is ``beta_t``.
    """
    return noise_t**2 - (signal_t / signal_p) ** 2 * noise_p**2


def one_step_kl_weight(signal_t: float, noise_t: float, signal_p: float, noise_p: float) -> float:
    """``b^2 / (2 var)`` of the posterior-mean step from t to p with the forward-step variance.

    ``b`` is the ``eta = 1`` coefficient of :func:`gaussian_step_coefficients`
    (epsilon parameterisation) and ``var`` is :func:`forward_step_variance`.
    For variance-preserving marginals and one step of the training grid it is
    the released weight ``lam_t = beta_t / (2 (1 - beta_t) (1 - abar_t))``.
    """
    _, b, _ = gaussian_step_coefficients(signal_t, noise_t, signal_p, noise_p, 1.0)
    return b**2 / (2 * forward_step_variance(signal_t, noise_t, signal_p, noise_p))


def flow_paper_kl_weight(sigma_t: float, num_train_timesteps: int = 1000) -> float:
    """The flow analogue of the released KL weight ``lam_t``, in the velocity parameterisation.

    ``lam_t`` is the exact-KL weight ``b^2 / (2 var)`` of one step of the
    1000-step training grid (:func:`one_step_kl_weight`). Rectified flow is
    trained on ``t = 1000 sigma``, so one grid step goes from ``sigma_t`` to
    ``sigma_p = sigma_t - 1 / N`` (floored at ``sigma_t / 2``). Written for
    velocity differences (``eps_u - eps_u0 = (1 - sigma_t)(v_u - v_u0)``):

    ``lam_t = (k (1 - sigma_t) - (1 - sigma_p) sigma_t)^2 / (2 var)`` with the
    ``eta = 1`` ``k`` of :func:`flow_step_coefficients` and ``var`` of
    :func:`forward_step_variance`; equal to ``(1 - sigma_t)^2`` times
    :func:`one_step_kl_weight` for ``sigma_t < 1`` and finite at ``sigma_t = 1``.
    """
    sigma_p = max(sigma_t - 1 / num_train_timesteps, sigma_t / 2)
    _, b, _ = flow_step_coefficients(sigma_t, sigma_p, 1.0)
    return b**2 / (2 * forward_step_variance(1 - sigma_t, sigma_t, 1 - sigma_p, sigma_p))
