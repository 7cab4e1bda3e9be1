"""Plain CFG ancestral sampling, the building block of the search baselines.

The same sampler as Null-TTA's (DDIM with eta = 1 from the pipeline's training
schedule, through the core adapter and equations), so that with the same seed
:func:`ancestral_sample` draws exactly what ``NullTextAligner.sample_baseline``
draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.utils.torch_utils import randn_tensor
from torch import Tensor

from ..adapters import Embeddings, PipelineAdapter, cat_embeddings, repeat_embeddings
from ..equations import StepCoefficients, cfg_combine, transition_mean
from .base import Task

__all__ = ["Prepared", "ancestral_sample", "cfg_noise", "prepare"]


@dataclass
class Prepared:
    """A task's prompt encoded and its schedule set: what every sampling loop needs."""

    adapter: PipelineAdapter
    cond: Embeddings
    null: Embeddings
    timesteps: list[int]
    coefficients: list[StepCoefficients]
    guidance_scale: float
    height: int
    width: int

    def latent_shape(self, batch_size: int = 1) -> tuple[int, ...]:
        """Shape of ``batch_size`` latents."""
        return self.adapter.latent_shape(batch_size, self.height, self.width)


def prepare(task: Task) -> Prepared:
    """Encode the prompt (c and phi), set the timesteps and read their coefficients."""
    adapter = task.adapter()
    default_h, default_w = adapter.default_resolution()
    height = task.height or default_h
    width = task.width or default_w
    adapter.check_resolution(height, width)
    cond, null = adapter.encode_prompt(task.prompt)
    timesteps = adapter.set_timesteps(task.num_inference_steps)
    scale = task.guidance_scale or adapter.default_guidance_scale
    return Prepared(
        adapter=adapter,
        cond=cond,
        null=null,
        timesteps=timesteps,
        coefficients=[adapter.step_coefficients(t) for t in timesteps],
        guidance_scale=scale,
        height=height,
        width=width,
    )


def cfg_noise(prepared: Prepared, latents: Tensor, step_index: int) -> Tensor:
    """CFG noise ``eps~`` for ``B`` latents: one UNet pass over ``[uncond, cond]`` rows."""
    batch = latents.shape[0]
    embeddings = cat_embeddings(
        [repeat_embeddings(prepared.null, batch), repeat_embeddings(prepared.cond, batch)]
    )
    both = prepared.adapter.predict_noise(
        torch.cat([latents, latents]), prepared.timesteps[step_index], embeddings
    )
    eps_uncond, eps_cond = both.chunk(2)
    return cfg_combine(eps_uncond, eps_cond, prepared.guidance_scale)


@torch.no_grad()
def ancestral_sample(prepared: Prepared, generator: torch.Generator | None) -> Tensor:
    """Plain CFG ancestral sampling from fresh noise; returns the final latent.

    Draws ``x_T`` and then one noise per step from ``generator``, in the
    order Null-TTA draws them with zero inner steps and one candidate.
    """
    adapter = prepared.adapter
    latents = adapter.prepare_latents(1, prepared.height, prepared.width, generator)
    for step_index, coefficients in enumerate(prepared.coefficients):
        eps = cfg_noise(prepared, latents, step_index)
        mean = transition_mean(latents, eps, coefficients)
        noise = randn_tensor(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        latents = mean + coefficients.std * noise
    return latents
