"""Stable Diffusion 1.x / 2.x (``StableDiffusionPipeline``): phi is the embedding of ``""``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import PipelineAdapter
from .embeddings import Embeddings

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

    def _null_input_ids(self, negative_prompt: str | None) -> tuple[Tensor, Tensor | None]:
        """Token ids (and mask, where the encoder takes one) of the negative prompt.

        Tokenised exactly as ``encode_prompt`` tokenises its unconditional input.
        """
        tokenizer = self.pipeline.tokenizer
        tokens = tokenizer(
            negative_prompt or "",
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        mask = None
        if getattr(self.pipeline.text_encoder.config, "use_attention_mask", False):
            mask = tokens.attention_mask.to(self.device)
        return tokens.input_ids.to(self.device), mask

    def null_token_embeddings(self, negative_prompt: str | None = None) -> Tensor:
        """The negative prompt's input token embeddings e, ``(1, L, D)``: phi = encoder(e)."""
        ids, _ = self._null_input_ids(negative_prompt)
        with torch.no_grad():
            return self.pipeline.text_encoder.get_input_embeddings()(ids).float()

    def encode_null_from_tokens(
        self, token_embeddings: Tensor, negative_prompt: str | None = None
    ) -> Embeddings:
        """``text_encoder(e')``: the encoder run with e' in place of its token embeddings.

        The encoder's own forward runs (position embeddings, causal mask, final
        layer norm), with the token-embedding layer's output replaced by e', so
        gradients reach e'.
        """
        encoder = self.pipeline.text_encoder
        ids, mask = self._null_input_ids(negative_prompt)
        ids = ids.repeat(token_embeddings.shape[0], 1)
        mask = None if mask is None else mask.repeat(token_embeddings.shape[0], 1)
        dtype = next(encoder.parameters()).dtype
        replaced = token_embeddings.to(dtype)
        handle = encoder.get_input_embeddings().register_forward_hook(
            lambda module, args, output: replaced
        )
        try:
            hidden = encoder(ids, attention_mask=mask)[0]
        finally:
            handle.remove()
        return {"encoder_hidden_states": hidden.float()}

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
