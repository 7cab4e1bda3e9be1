"""Stable Diffusion 3 / 3.5 (``StableDiffusion3Pipeline``): rectified flow, derived here.

Not tested in the paper, which names flow matching as future work. What is
derived (see :mod:`nulltta.flow_equations` and ``docs/concepts/model-families.md``):

- The core works in the velocity ``v`` the transformer predicts. With
  ``x_t = (1 - sigma) x0 + sigma eps`` and ``v = eps - x0`` we have
  ``x_t = x0 + sigma v``, so the core's Tweedie ``(x_t - noise p) / signal``
  with ``signal = 1``, ``noise = sigma`` gives ``x0_hat = x_t - sigma v~``.
  CFG is applied to the velocities, as the pipeline does; since
  ``eps = x_t + (1 - sigma) v`` is affine in ``v`` this equals CFG on ``eps``.
- The Euler ODE step is deterministic, so there is no local KL and no
  candidates to choose from. The sampler is the DDIM family for the
  marginals ``N((1 - sigma) x0, sigma^2)``:
  ``x_p = (1 - sigma_p) x0_hat + sqrt(sigma_p^2 - std^2) eps_hat + std z`` with
  ``std = eta sigma_p sqrt(1 - ((1 - sigma_t) sigma_p / ((1 - sigma_p) sigma_t))^2)``.
  It keeps the marginals for every eta; ``eta = 1`` is the exact posterior of
  a Markov forward process (DDPM analogue), ``eta = 0`` is the pipeline's own
  Euler step ``x_p = x_t + (sigma_p - sigma_t) v``. The mean is affine in
  ``v`` (:func:`~nulltta.flow_equations.flow_step_coefficients`), so the exact
  local KL is the same closed form as for diffusion.
- The "paper" KL weight is the flow analogue of the released ``lam_t``
  (:func:`~nulltta.flow_equations.flow_paper_kl_weight`).
- The last step goes to ``sigma = 0`` and is deterministic (``std = 0``), as
  DDPM's last step is.

phi' is the pair (negative prompt embeds ``(1, 77 + 256, 4096)``: CLIP-L and
CLIP-G hidden states zero-padded to T5's width, then T5's tokens (zeros
without T5); negative pooled embeds ``(1, 2048)``), packed into one parameter.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch import Tensor, nn

from ..equations import StepCoefficients
from ..flow_equations import flow_paper_kl_weight, flow_step_coefficients
from ..schedulers import UnsupportedSchedulerError
from .base import PipelineAdapter
from .embeddings import Embeddings

__all__ = ["StableDiffusion3Adapter", "make_flow_scheduler"]


def make_flow_scheduler(choice: Any, pipeline_scheduler: Any) -> FlowMatchEulerDiscreteScheduler:
    """A fresh ``FlowMatchEulerDiscreteScheduler`` giving the sigma schedule (with its shift).

    ``"ddim"`` (the default sampler name: for flow models it is the
    DDIM-family flow sampler of this module) and ``"pipeline"`` copy the
    pipeline's scheduler; a ``FlowMatchEulerDiscreteScheduler`` instance is
    copied likewise. The scheduler only provides timesteps and sigmas: the
    step is ours. ``init_noise_sigma`` (1: ``x_T ~ N(0, I)`` as the pipeline
    draws it) is set on the copy for the core's noise draws.
    """
    if isinstance(choice, str):
        if choice.lower() not in ("ddim", "pipeline"):
            raise UnsupportedSchedulerError(
                f"scheduler={choice!r} is not available for flow-matching models; use 'ddim' (the "
                "default: the stochastic flow sampler) or 'pipeline'"
            )
        source = pipeline_scheduler
    else:
        source = choice
    if not isinstance(source, FlowMatchEulerDiscreteScheduler):
        raise UnsupportedSchedulerError(
            f"{type(source).__name__} cannot drive a flow-matching model here; pass a "
            "FlowMatchEulerDiscreteScheduler (its sigmas and shift are used) or scheduler='ddim'"
        )
    config = source.config
    if config.get("invert_sigmas", False) or config.get("stochastic_sampling", False):
        raise UnsupportedSchedulerError(
            "FlowMatchEulerDiscreteScheduler with invert_sigmas or stochastic_sampling is not "
            "supported: nulltta uses the plain sigma schedule and its own stochastic step (eta)"
        )
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
    scheduler.init_noise_sigma = 1.0
    return scheduler


class StableDiffusion3Adapter(PipelineAdapter):
    """Adapter for ``StableDiffusion3Pipeline`` (MMDiT, rectified flow).

    Parameters
    ----------
    pipeline : StableDiffusion3Pipeline
    scheduler : {"ddim", "pipeline"} or FlowMatchEulerDiscreteScheduler, default="ddim"
        Source of the sigma schedule (see :func:`make_flow_scheduler`).
    eta : float, default=1.0
        Stochasticity of the flow sampler: 1 is the DDPM-like posterior, 0
        the pipeline's deterministic Euler step (no KL, no candidates).
    gradient_checkpointing : bool or None, default=None
        None: on for the transformer and the VAE during a run.
    max_sequence_length : int, default=256
        T5 tokens, as the pipeline's default.

    Notes
    -----
    ``predict_noise`` returns the velocity and ``step_coefficients`` report
    ``signal = 1``, ``noise = sigma_t`` and the step's ``a, b`` in the velocity.
    Defaults: CFG 7.0 (the pipeline's), the transformer's native size (1024
    for SD3), gradient checkpointing on.

    """

    family = "stable-diffusion-3"
    default_guidance_scale = 7.0
    default_gradient_checkpointing = True
    cuda_denoiser_dtype = "bfloat16"
    cuda_vae_dtype = "bfloat16"
    trainable_keys = ("encoder_hidden_states", "pooled_projections")

    def __init__(
        self,
        pipeline: Any,
        scheduler: Any = "ddim",
        eta: float = 1.0,
        gradient_checkpointing: bool | None = None,
        max_sequence_length: int = 256,
    ) -> None:
        super().__init__(pipeline, scheduler, eta, gradient_checkpointing)
        self.max_sequence_length = max_sequence_length
        self._sigmas: dict[float, tuple[float, float]] = {}
        self._resolution: tuple[int, int] | None = None

    def build_scheduler(self, choice: Any) -> FlowMatchEulerDiscreteScheduler:
        """A copy of a ``FlowMatchEulerDiscreteScheduler`` (see :func:`make_flow_scheduler`)."""
        return make_flow_scheduler(choice, self.pipeline.scheduler)

    @property
    def denoiser(self) -> nn.Module:
        """The MMDiT transformer."""
        return self.pipeline.transformer

    def frozen_modules(self) -> list[nn.Module]:
        """Transformer, VAE and the three text encoders."""
        pipe = self.pipeline
        modules = [pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2]
        modules.append(pipe.text_encoder_3)
        return [m for m in modules if m is not None]

    # --- resolution and latents ---------------------------------------------------
    def default_resolution(self) -> tuple[int, int]:
        """The transformer's sample size times the VAE factor (1024 for SD3)."""
        size = self.pipeline.transformer.config.sample_size * self.pipeline.vae_scale_factor
        return size, size

    def resolution_multiple(self) -> int:
        """VAE factor times the patch size (16 for SD3), as the pipeline checks."""
        return self.pipeline.vae_scale_factor * self.pipeline.transformer.config.patch_size

    def check_resolution(self, height: int, width: int) -> None:
        """Check the size and remember it (resolution-dependent shifting needs it)."""
        super().check_resolution(height, width)
        self._resolution = (height, width)

    def latent_shape(self, batch_size: int, height: int, width: int) -> tuple[int, ...]:
        """``(B, C, H / f, W / f)``."""
        factor = self.pipeline.vae_scale_factor
        channels = self.pipeline.transformer.config.in_channels
        return (batch_size, channels, height // factor, width // factor)

    # --- schedule ----------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> list[float]:
        """The pipeline's shifted sigma schedule; timesteps are ``1000 sigma`` (floats)."""
        kwargs = {}
        if self.scheduler.config.get("use_dynamic_shifting", False):
            from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3 import (
                calculate_shift,
            )

            height, width = self._resolution or self.default_resolution()
            patch = self.pipeline.vae_scale_factor * self.pipeline.transformer.config.patch_size
            config = self.scheduler.config
            kwargs["mu"] = calculate_shift(
                (height // patch) * (width // patch),
                config.get("base_image_seq_len", 256),
                config.get("max_image_seq_len", 4096),
                config.get("base_shift", 0.5),
                config.get("max_shift", 1.16),
            )
        self.scheduler.set_timesteps(num_inference_steps, device=self.device, **kwargs)
        timesteps = [float(t) for t in self.scheduler.timesteps]
        sigmas = [float(s) for s in self.scheduler.sigmas]
        self._sigmas = {t: (sigmas[i], sigmas[i + 1]) for i, t in enumerate(timesteps)}
        return timesteps

    def step_coefficients(self, timestep: float) -> StepCoefficients:
        """The flow step from ``sigma_t`` to the next sigma, written in the velocity."""
        sigma_t, sigma_p = self._sigmas[float(timestep)]
        a, b, std = flow_step_coefficients(sigma_t, sigma_p, self.eta)
        return StepCoefficients(
            timestep=timestep,
            signal=1.0,
            noise=sigma_t,
            a=a,
            b=b,
            std=std,
            paper_kl_weight=flow_paper_kl_weight(
                sigma_t, self.scheduler.config.num_train_timesteps
            ),
        )

    # --- text --------------------------------------------------------------------
    def null_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of phi''s entries without the batch: ``(77 + 256, 4096)``, ``(2048,)`` for SD3."""
        config = self.pipeline.transformer.config
        length = self.pipeline.tokenizer_max_length + self.max_sequence_length
        return {
            "encoder_hidden_states": (length, config.joint_attention_dim),
            "pooled_projections": (config.pooled_projection_dim,),
        }

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None = None
    ) -> tuple[Embeddings, Embeddings]:
        """Encode with the pipeline's ``encode_prompt`` (``""`` gives phi)."""
        self.warn_if_truncated(prompt, self.pipeline.tokenizer)
        with torch.no_grad():
            cond, null, pooled, null_pooled = self.pipeline.encode_prompt(
                prompt=prompt,
                prompt_2=None,
                prompt_3=None,
                device=self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
                max_sequence_length=self.max_sequence_length,
            )
        return (
            {"encoder_hidden_states": cond, "pooled_projections": pooled},
            {"encoder_hidden_states": null, "pooled_projections": null_pooled},
        )

    # --- the networks ---------------------------------------------------------------
    def denoise(self, latents: Tensor, timestep: float, embeddings: Embeddings) -> Tensor:
        """The transformer's velocity ``v(x_t, t, e)`` in float32 (see the class notes)."""
        dtype = self.model_dtype
        timestep = self.timestep_input(float(timestep), dtype=torch.float32)
        timesteps = timestep.expand(latents.shape[0])
        return self.denoiser_call()(
            hidden_states=latents.to(dtype),
            timestep=timesteps,
            encoder_hidden_states=embeddings["encoder_hidden_states"].to(dtype),
            pooled_projections=embeddings["pooled_projections"].to(dtype),
            return_dict=False,
        )[0].float()

    def decode_latents(self, latents: Tensor) -> Tensor:
        """``latents / scaling_factor + shift_factor``, VAE decode, mapped to [0, 1]."""
        vae = self.decoding_vae()
        scaled = latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)
        dtype = next(vae.parameters()).dtype
        image = self.vae_decode_call(vae)(scaled.to(dtype), return_dict=False)[0].float()
        return (image / 2 + 0.5).clamp(0, 1)
