"""Sequential Monte Carlo in the style of DAS (Kim et al., ICLR 2025).

DAS samples from the reward-tilted target ``p(x0) exp(R(x0) / alpha)`` with
N particles. At step t the twist ``psi_t(x_t) = exp(lambda_t R(x0_hat(x_t)) /
alpha)`` looks ahead through the Tweedie estimate; each particle is moved by
the twisted proposal ``N(mu + sigma_t^2 lambda_{t-1} grad log psi, sigma_t^2)``
and reweighted by ``p(x_{t-1}|x_t) psi_{t-1}(x_{t-1}) / (q(x_{t-1}|x_t)
psi_t(x_t))``; particles are resampled (SSP, as the authors' code) when the
effective sample size drops below a fraction of N, and, as in the authors'
code, each slot keeps its twist and reward gradient (``carry_twists``). Tempering ``lambda_t =
min((1 + gamma)^i - 1, 1)`` switches the twist on gradually.

``docs/concepts/baselines.md`` lists how this matches the authors' sampler
(``benchmarks/das_vs_official.py`` runs the two side by side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from ..equations import transition_mean, tweedie_x0
from .base import Method, MethodOutput, Task, compressed_rate
from .sampling import Prepared, cfg_noise, prepare

__all__ = [
    "DAS",
    "RESAMPLING_SCHEMES",
    "effective_sample_size",
    "resample",
    "ssp_counts",
    "ssp_resample",
    "systematic_resample",
    "tempering",
]

RESAMPLING_SCHEMES = ("ssp", "systematic")


def effective_sample_size(log_weights: Tensor) -> float:
    """``ESS = (sum w)^2 / sum w^2`` from unnormalised log weights (N for equal weights)."""
    return float(
        torch.exp(2 * torch.logsumexp(log_weights, 0) - torch.logsumexp(2 * log_weights, 0))
    )


def systematic_resample(weights: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Indices of N particles drawn by systematic resampling.

    One uniform ``u``; particle ``j`` is picked at the positions ``(u + k) / N``
    that fall in its slice of the cumulative weights, so it gets
    ``floor(N w_j)`` or ``ceil(N w_j)`` copies.
    """
    n = weights.shape[0]
    u = torch.rand((), generator=generator, device=weights.device)
    positions = (u + torch.arange(n, device=weights.device)) / n
    cumulative = torch.cumsum(weights / weights.sum(), 0)
    return torch.searchsorted(cumulative, positions, right=True).clamp(max=n - 1)


def ssp_counts(expected: Sequence[float], uniforms: Sequence[float]) -> list[int]:
    """Offspring counts of the Srinivasan sampling process (Gerber, Chopin and Whiteley 2019).

    Each particle ``j`` gets ``floor(m_j)`` children plus one with probability
    ``frac(m_j)``, so ``E[count_j] = m_j`` and every count is ``floor(m_j)``
    or ``ceil(m_j)``; unlike systematic resampling the extra children are
    negatively associated and do not depend on the particles' order. The
    fractional parts are settled two at a time: a pair with fractions
    ``(a, b)`` and one uniform ``u`` moves mass so that one of them reaches
    0 or 1, keeping both expectations. The second grows when ``u < p`` with
    ``p = min(b, 1 - a) / (min(b, 1 - a) + min(a, 1 - b))``, else the first.
    If ``a + b < 1`` the growing one takes ``a + b`` and the other is settled
    at 0; otherwise the growing one reaches 1 (a child) and the other keeps
    ``a + b - 1``. The next pair is ``(grown, next)`` or ``(next, shrunk)``,
    the order the authors' code keeps, so the same uniforms give the same
    counts as theirs.

    Parameters
    ----------
    expected : sequence of float
        ``m_j = N W_j`` (sums to the number of children, an integer).
    uniforms : sequence of float
        ``len(expected) - 1`` uniforms in [0, 1).

    Returns
    -------
    list of int
        Children per particle, summing to ``round(sum(expected))``.

    """
    counts = [int(m // 1) for m in expected]
    fractions = [m - c for m, c in zip(expected, counts, strict=True)]
    pair = (0, 1)  # the two particles being settled
    for step, u in enumerate(uniforms):
        first, second = pair
        a, b = fractions[first], fractions[second]
        to_first, to_second = min(b, 1 - a), min(a, 1 - b)  # mass each could gain
        total = to_first + to_second
        grow, shrink = (second, first) if total > 0 and u < to_first / total else pair
        if fractions[shrink] < 1 - fractions[grow]:  # a + b < 1: shrink is settled at 0
            fractions[grow] += fractions[shrink]
            pair = (grow, step + 2)
        else:  # grow reaches 1 (a child); shrink keeps a + b - 1
            fractions[shrink] -= 1 - fractions[grow]
            counts[grow] += 1
            pair = (step + 2, shrink)
    target = round(sum(expected))
    pending = pair[0] if pair[1] >= len(expected) else pair[1]
    if sum(counts) == target - 1:  # the pending fraction is 1 up to round-off
        counts[pending] += 1
    if sum(counts) != target:
        raise RuntimeError(f"SSP produced {sum(counts)} children instead of {target}")
    return counts


def ssp_resample(weights: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Indices of N particles drawn by SSP resampling (:func:`ssp_counts`), the authors' scheme."""
    n = weights.shape[0]
    normalised = (weights.double() / weights.double().sum()).cpu()
    uniforms = torch.rand(n - 1, generator=generator, device=weights.device, dtype=torch.float64)
    counts = ssp_counts((n * normalised).tolist(), uniforms.cpu().tolist())
    index = torch.repeat_interleave(torch.arange(n), torch.tensor(counts))
    return index.to(weights.device)


def resample(weights: Tensor, scheme: str, generator: torch.Generator | None = None) -> Tensor:
    """Indices of N particles drawn by ``scheme`` (one of :data:`RESAMPLING_SCHEMES`)."""
    if scheme == "ssp":
        return ssp_resample(weights, generator)
    if scheme == "systematic":
        return systematic_resample(weights, generator)
    raise ValueError(f"unknown resampling scheme {scheme!r}; use one of {RESAMPLING_SCHEMES}")


def tempering(step_index: int, rate: float) -> float:
    """DAS's exponential tempering ``lambda_i = min((1 + gamma)^i - 1, 1)``."""
    return min((1 + rate) ** step_index - 1, 1.0)


@dataclass
class DAS(Method):
    """SMC with tempered twisted proposals; returns the highest-weight particle.

    Parameters
    ----------
    num_particles : int, default=4
        N (DAS's SD setting).
    kl_coeff : float, default=0.01
        ``alpha``: the target is ``p(x0) exp(R / alpha)``; smaller follows the
        reward harder. DAS uses 0.005-0.01 for rewards of unit scale.
    tempering_rate : float or None
        ``gamma``; None compresses DAS's 0.008 over 100 steps to the task's T.
    ess_threshold : float, default=0.5
        Resample when ``ESS < ess_threshold * N``.
    resampling : {"ssp", "systematic"}, default="ssp"
        Resampling scheme; SSP is the authors' (:func:`ssp_counts`).
    carry_twists : bool, default=False
        Whether resampling moves each particle's twist and reward gradient
        with its latent. False (the default) does what the authors' released
        sampler does: only the latent and its noise prediction move, the twist
        and gradient stay in their slots, so a copy is pushed by another
        particle's gradient and its next weight divides by another particle's
        twist. True is the textbook SMC bookkeeping. Both are measured side by
        side in ``docs/concepts/baselines.md``; the default keeps the baseline
        the one its authors run.

    """

    name = "das"
    follows = "Kim et al. 2025, DAS: test-time alignment without reward over-optimization"
    num_particles: int = 4
    kl_coeff: float = 0.01
    tempering_rate: float | None = None
    ess_threshold: float = 0.5
    resampling: str = "ssp"
    carry_twists: bool = False

    def _look_ahead(
        self, task: Task, prepared: Prepared, latents: Tensor, step_index: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """CFG noise, reward of the Tweedie estimate, and its gradient w.r.t. x_t."""
        coefficients = prepared.coefficients[step_index]
        with torch.enable_grad():
            x_t = latents.detach().requires_grad_(True)
            eps = cfg_noise(prepared, x_t, step_index)
            x0 = tweedie_x0(x_t, eps, coefficients.signal, coefficients.noise)
            rewards = task.reward(prepared.adapter.decode(x0), [task.prompt])
            (gradient,) = torch.autograd.grad(rewards.sum() / self.kl_coeff, x_t)
        return eps.detach(), torch.nan_to_num(rewards.detach()), torch.nan_to_num(gradient)

    def run(self, task: Task) -> MethodOutput:
        """Run the particle system through every step; keep the argmax-weight particle."""
        if self.resampling not in RESAMPLING_SCHEMES:
            raise ValueError(
                f"unknown resampling scheme {self.resampling!r}; use one of {RESAMPLING_SCHEMES}"
            )
        prepared = prepare(task)
        adapter = prepared.adapter
        rate = self.tempering_rate
        if rate is None:
            rate = compressed_rate(len(prepared.timesteps))
        generator = task.generator()
        n = self.num_particles
        latents = adapter.prepare_latents(n, prepared.height, prepared.width, generator)
        log_w = torch.zeros(n, device=adapter.device)
        log_twist_prev = torch.zeros(n, device=adapter.device)
        log_p_over_q = torch.zeros(n, device=adapter.device)
        resamplings = 0
        with adapter.frozen():
            for i, coefficients in enumerate(prepared.coefficients):
                eps, rewards, gradient = self._look_ahead(task, prepared, latents, i)
                log_twist = tempering(i, rate) * rewards / self.kl_coeff
                # Weight of the move into x_t (its twist is known only now).
                log_w = log_w + log_p_over_q + log_twist - log_twist_prev
                if effective_sample_size(log_w) < self.ess_threshold * n:
                    index = resample(torch.softmax(log_w, 0), self.resampling, generator)
                    latents, eps = latents[index], eps[index]
                    if self.carry_twists:
                        gradient, log_twist = gradient[index], log_twist[index]
                    log_w = torch.zeros_like(log_w)
                    resamplings += 1
                # Twisted proposal around the sampler's own transition.
                mean = transition_mean(latents, eps, coefficients)
                variance = coefficients.std**2
                shift = variance * tempering(i + 1, rate) * gradient
                noise = randn_tensor(mean.shape, generator=generator, device=mean.device)
                latents = mean + shift + coefficients.std * noise
                log_p_over_q = _log_p_over_q(latents, mean, shift, variance)
                log_twist_prev = log_twist
            with torch.no_grad():
                images = adapter.decode(latents)
                final = task.reward(images, [task.prompt]) / self.kl_coeff
        log_w = log_w + log_p_over_q + final - log_twist_prev
        best = int(torch.argmax(log_w))
        info = {
            "resamplings": resamplings,
            "final_ess": effective_sample_size(log_w),
            "final_weights": torch.softmax(log_w, 0).tolist(),
        }
        return MethodOutput(images[best : best + 1], info)


def _log_p_over_q(sample: Tensor, mean: Tensor, shift: Tensor, variance: float) -> Tensor:
    """``log N(x; mu, s^2) - log N(x; mu + shift, s^2)`` per particle (0 when s = 0)."""
    if variance == 0:
        return torch.zeros(sample.shape[0], device=sample.device)
    prior = (sample - mean).pow(2).flatten(1).sum(1)
    proposal = (sample - mean - shift).pow(2).flatten(1).sum(1)
    return (proposal - prior) / (2 * variance)
