"""Direct noise optimisation in the style of DNO (Tang et al., 2024).

Ancestral sampling is a deterministic map from its noises ``(x_T, z_T, ...,
z_1)`` to the image. DNO maximises the reward of that image over the noises
by gradient ascent through the whole sampling chain, each UNet call
checkpointed so memory does not grow with T. Its *probability regulariser*
keeps the noises typical of N(0, I): when optimised noises drift out of the
Gaussian's typical set the sampler leaves the data manifold and the reward is
hacked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..equations import transition_mean
from .base import Method, MethodOutput, Task
from .sampling import Prepared, cfg_noise, prepare

__all__ = ["DNO", "probability_regularizer", "sample_from_noises"]


def sample_from_noises(prepared: Prepared, noises: Tensor, use_checkpoint: bool = True) -> Tensor:
    """Run the ancestral sampler with given noises; differentiable in ``noises``.

    ``noises[0]`` is ``x_T`` (times the scheduler's initial sigma) and
    ``noises[i + 1]`` the noise of step i: ``x_{t-1} = mu(x_t) + sigma_t z``.
    With the noises a generator would draw, this is :func:`ancestral_sample`.
    """
    latents = noises[:1] * prepared.adapter.scheduler.init_noise_sigma
    for step_index, coefficients in enumerate(prepared.coefficients):
        if use_checkpoint and torch.is_grad_enabled():
            eps = checkpoint(cfg_noise, prepared, latents, step_index, use_reentrant=False)
        else:
            eps = cfg_noise(prepared, latents, step_index)
        mean = transition_mean(latents, eps, coefficients)
        latents = mean + coefficients.std * noises[step_index + 1 : step_index + 2]
    return latents


def _negative_log_probability(blocks: Tensor) -> Tensor:
    """DNO's test statistics of ``n`` rows of a d-dim standard normal, as a penalty.

    The row mean ``m`` has ``n ||m||^2 / d ~ chi^2_d / d``; the second-moment
    matrix ``C = X^T X / n`` concentrates around I with
    ``sqrt(1 + ||C - I||_2) - 1 <= sqrt(d / n)`` with high probability. Each
    gives a log tail probability, capped at ``-log 2`` so typical noise is not
    penalised further.
    """
    n, d = blocks.shape
    mean = blocks.mean(0)
    second_moment = blocks.T @ blocks / n
    log_p_mean = (-n * mean.pow(2).sum() / (2 * d)).clamp(max=-math.log(2))
    deviation = torch.linalg.matrix_norm(second_moment - torch.eye(d, device=blocks.device), ord=2)
    excess = (torch.sqrt(1 + deviation) - 1 - math.sqrt(d / n)).clamp(min=0)
    log_p_cov = (-n * excess.pow(2) / 2).clamp(max=-math.log(2))
    return -(log_p_mean + log_p_cov)


def probability_regularizer(
    noises: Tensor,
    block_dim: int = 4,
    shuffles: int = 100,
    generator: torch.Generator | None = None,
) -> Tensor:
    """DNO's probability regulariser of a noise vector (lower is more Gaussian).

    The flattened noise is cut into ``n`` blocks of ``block_dim`` entries, in
    order and after ``shuffles`` random permutations (so both local and
    global correlations are tested); the penalty is the negative log tail
    probability of the blocks' mean and second moment (see
    :func:`_negative_log_probability`), in order plus the average over the
    permutations. Its minimum, ``4 log 2``, is reached by typical noise.
    """
    flat = noises.flatten()
    n = flat.numel() // block_dim
    flat = flat[: n * block_dim]
    penalty = _negative_log_probability(flat.view(n, block_dim))
    shuffled = [
        _negative_log_probability(
            flat[torch.randperm(flat.numel(), generator=generator)].view(n, block_dim)
        )
        for _ in range(shuffles)
    ]
    if shuffled:
        penalty = penalty + torch.stack(shuffled).mean()
    return penalty


@dataclass
class DNO(Method):
    """Optimise the initial and per-step noises through the sampling chain.

    Parameters
    ----------
    iterations : int, default=10
        Gradient steps; each runs the whole chain forward and backward.
    learning_rate : float, default=0.01
        AdamW step size (DNO's default optimiser and rate).
    regularization : float, default=1.0
        ``gamma``, weight of :func:`probability_regularizer`; 0 turns it off.
    block_dim, shuffles : int
        Block size (DNO's ``4 ** subsample``, subsample = 1) and number of
        permutations of the regulariser.
    grad_clip : float, default=1.0
        Gradient-norm clip, as in DNO.
    use_checkpoint : bool, default=True
        Checkpoint each UNet call of the chain (recomputed in the backward pass).

    """

    name = "dno"
    follows = "Tang et al. 2024, Direct Noise Optimization (TZW1998/Direct-Noise-Optimization)"
    iterations: int = 10
    learning_rate: float = 0.01
    regularization: float = 1.0
    block_dim: int = 4
    shuffles: int = 100
    grad_clip: float = 1.0
    use_checkpoint: bool = True

    def run(self, task: Task) -> MethodOutput:
        """Optimise the noises for ``iterations`` steps, then sample with the final ones."""
        prepared = prepare(task)
        adapter = prepared.adapter
        shape = prepared.latent_shape(1)
        generator = task.generator()
        # The noises a plain sample of this seed draws: iteration 0 is plain sampling.
        draws = [randn_tensor(shape, generator=generator, device=adapter.device)]
        draws += [
            randn_tensor(shape, generator=generator, device=adapter.device)
            for _ in range(len(prepared.timesteps))
        ]
        noises = torch.cat(draws).requires_grad_(True)
        optimizer = torch.optim.AdamW([noises], lr=self.learning_rate)
        permutations = torch.Generator().manual_seed(task.seed)
        rewards = []
        with adapter.frozen():
            for _ in range(self.iterations):
                optimizer.zero_grad()
                image = adapter.decode(sample_from_noises(prepared, noises, self.use_checkpoint))
                reward = task.reward(image, [task.prompt]).sum()
                loss = -reward
                if self.regularization > 0:
                    loss = loss + self.regularization * probability_regularizer(
                        noises, self.block_dim, self.shuffles, permutations
                    )
                loss.backward()
                torch.nn.utils.clip_grad_norm_([noises], self.grad_clip)
                optimizer.step()
                rewards.append(float(reward.detach()))
            with torch.no_grad():
                image = adapter.decode(sample_from_noises(prepared, noises, False))
                penalty = float(probability_regularizer(noises, self.block_dim, 0))
        info = {"iteration_rewards": rewards, "final_regularizer": penalty}
        return MethodOutput(image, info)
