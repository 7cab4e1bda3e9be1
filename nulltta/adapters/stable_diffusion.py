"""Stable Diffusion 1.x / 2.x (``StableDiffusionPipeline``): phi is the embedding of ``""``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import Embeddings, PipelineAdapter

__all__ = ["StableDiffusionAdapter"]


class StableDiffusionAdapter(PipelineAdapter):
    """Adapter for ``StableDiffusionPipeline`` (epsilon, v or sample prediction).

    ``phi`` is the text encoder's output for the negative prompt, ``""`` by
    default, shape ``(1, L, D)`` (77 x 768 for SD1.5, 77 x 1024 for SD2.x).
    """

    family = "stable-diffusion"
    default_guidance_scale = 7.5

    @property
    def denoiser(self) -> nn.Module:
        """The UNet."""
        return self.pipeline.unet

    def frozen_modules(self) -> list[nn.Module]:
        """UNet, VAE and text encoder."""
        modules = [self.pipeline.unet, self.pipeline.vae, self.pipeline.text_encoder]
        return [m for m in modules if m is not None]

    def default_resolution(self) -> tuple[int, int]:
        """The UNet's sample size times the VAE factor (512 for SD1.5)."""
        size = self.pipeline.unet.config.sample_size * self.pipeline.vae_scale_factor
        return size, size

    def resolution_multiple(self) -> int:
        """VAE factor times the UNet's total downsampling."""
        num_downsamples = len(self.pipeline.unet.config.down_block_types) - 1
        return self.pipeline.vae_scale_factor * 2**num_downsamples

    def latent_shape(self, batch_size: int, height: int, width: int) -> tuple[int, ...]:
        """``(B, C, H / f, W / f)``."""
        factor = self.pipeline.vae_scale_factor
        channels = self.pipeline.unet.config.in_channels
        return (batch_size, channels, height // factor, width // factor)

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None = None
    ) -> tuple[Embeddings, Embeddings]:
        """Encode with the pipeline's own ``encode_prompt`` (``""`` gives phi)."""
        self.warn_if_truncated(prompt, self.pipeline.tokenizer)
        with torch.no_grad():
            cond, null = self.pipeline.encode_prompt(
                prompt,
                self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
            )
        return {"encoder_hidden_states": cond}, {"encoder_hidden_states": null}

    def denoise(self, latents: Tensor, timestep: int, embeddings: Embeddings) -> Tensor:
        """UNet call, converted to ``eps`` from the scheduler's prediction type."""
        dtype = self.model_dtype
        model_input = self.scheduler.scale_model_input(latents, timestep)
        output = self.denoiser_call()(
            model_input.to(dtype),
            self.timestep_input(int(timestep)),
            encoder_hidden_states=embeddings["encoder_hidden_states"].to(dtype),
            return_dict=False,
        )[0].float()
        return self.output_to_epsilon(output, latents, timestep)

    def decode_latents(self, latents: Tensor) -> Tensor:
        """VAE decode of ``latents / scaling_factor``, mapped from [-1, 1] to [0, 1]."""
        vae = self.decoding_vae()
        scaled = latents / vae.config.scaling_factor
        dtype = next(vae.parameters()).dtype  # not vae.dtype: that walks every submodule
        image = self.vae_decode_call(vae)(scaled.to(dtype), return_dict=False)[0].float()
        return (image / 2 + 0.5).clamp(0, 1)
