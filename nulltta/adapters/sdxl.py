"""Stable Diffusion XL (``StableDiffusionXLPipeline``): phi' is the pair (embeds, pooled embeds).

SDXL conditions its UNet on the concatenated penultimate hidden states of two
CLIP text encoders (``(1, 77, 768 + 1280 = 2048)``) and, through its
``text_time`` added embedding, on the second encoder's pooled, projected
output (``(1, 1280)``) and six size/crop ids. The null branch of CFG is the
pair (negative prompt embeds, negative pooled embeds): both are optimised,
as in the authors' SDXL script. The size/crop ids are not text: they stay
fixed and equal for both branches, as in the pipeline.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .base import PipelineAdapter
from .embeddings import Embeddings
from .stable_diffusion import StableDiffusionAdapter

__all__ = ["StableDiffusionXLAdapter"]


class StableDiffusionXLAdapter(StableDiffusionAdapter):
    """Adapter for ``StableDiffusionXLPipeline`` (epsilon, v or sample prediction).

    phi
        With no negative prompt and ``force_zeros_for_empty_prompt`` in the
        pipeline's config (SDXL base: True), phi is zeros, as the pipeline's
        own null branch; otherwise the encoders' output for the negative
        prompt (``""`` by default). A negative prompt is phi's starting point,
        as in the release's SDXL script.
    phi'
        ``{"encoder_hidden_states": (1, 77, 2048), "text_embeds": (1, 1280)}``,
        packed into one flat parameter of ``77 * 2048 + 1280`` entries.
    time ids
        ``(original_size, crop_top_left, target_size)`` built by the
        pipeline's ``_get_add_time_ids`` with the pipeline's defaults:
        original = target = the image size of the latents, crop ``(0, 0)``.
    Defaults
        CFG 5.0 and 1024 x 1024 (the UNet's ``sample_size`` 128 times the VAE
        factor 8), as the release; gradient checkpointing on the UNet and the
        VAE during a run (``gradient_checkpointing=None``).
    VAE
        A float16 VAE with ``force_upcast`` (SDXL's VAE overflows in float16)
        is decoded by a float32 copy made once per adapter (about 335 MB for
        SDXL's), so the user's VAE is never converted in place.

    """

    family = "stable-diffusion-xl"
    default_guidance_scale = 5.0
    default_gradient_checkpointing = True
    trainable_keys = ("encoder_hidden_states", "text_embeds")

    def __init__(
        self,
        pipeline: object,
        scheduler: object = "ddim",
        eta: float = 1.0,
        gradient_checkpointing: bool | None = None,
    ) -> None:
        super().__init__(pipeline, scheduler, eta, gradient_checkpointing)
        self._float32_vae: nn.Module | None = None
        self._time_ids: dict[tuple[int, int], Tensor] = {}

    def frozen_modules(self) -> list[nn.Module]:
        """UNet, VAE (and its float32 copy, if made) and both text encoders."""
        pipe = self.pipeline
        modules = [pipe.unet, pipe.vae, self._float32_vae, pipe.text_encoder, pipe.text_encoder_2]
        return [m for m in modules if m is not None]

    def checkpointed_modules(self) -> list[nn.Module]:
        """The UNet and the VAE that decodes (the float32 copy where one is needed)."""
        return [self.pipeline.unet, self.decoding_vae()]

    def null_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of phi''s entries (batch excluded), read from the configs.

        ``(L, cross_attention_dim)`` and ``(projection_class_embeddings_input_dim
        - 6 addition_time_embed_dim,)``: ``(77, 2048)`` and ``(1280,)`` for SDXL.
        """
        config = self.pipeline.unet.config
        tokenizer = self.pipeline.tokenizer_2 or self.pipeline.tokenizer
        length = tokenizer.model_max_length if tokenizer is not None else 77
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        return {
            "encoder_hidden_states": (length, config.cross_attention_dim),
            "text_embeds": (pooled,),
        }

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None = None
    ) -> tuple[Embeddings, Embeddings]:
        """Encode with the pipeline's ``encode_prompt`` (zeros phi where its config says so)."""
        self.warn_if_truncated(prompt, self.pipeline.tokenizer_2 or self.pipeline.tokenizer)
        with torch.no_grad():
            cond, null, pooled, null_pooled = self.pipeline.encode_prompt(
                prompt,
                device=self.device,
                num_images_per_prompt=1,
                do_classifier_free_guidance=True,
                negative_prompt=negative_prompt,
            )
        return (
            {"encoder_hidden_states": cond, "text_embeds": pooled},
            {"encoder_hidden_states": null, "text_embeds": null_pooled},
        )

    def null_token_embeddings(self, negative_prompt: str | None = None) -> Tensor:
        """Not available: SDXL's phi is two encoders' outputs plus a pooled embedding."""
        return PipelineAdapter.null_token_embeddings(self, negative_prompt)

    def encode_null_from_tokens(
        self, token_embeddings: Tensor, negative_prompt: str | None = None
    ) -> Embeddings:
        """Not available (see :meth:`null_token_embeddings`)."""
        return PipelineAdapter.encode_null_from_tokens(self, token_embeddings, negative_prompt)

    def time_ids(self, height: int, width: int, pooled_dim: int) -> Tensor:
        """``(1, 6)`` size/crop ids for ``height x width`` images, as the pipeline builds them."""
        key = (height, width)
        if key not in self._time_ids:
            encoder_2 = self.pipeline.text_encoder_2
            projection = pooled_dim if encoder_2 is None else encoder_2.config.projection_dim
            self._time_ids[key] = self.pipeline._get_add_time_ids(
                (height, width),
                (0, 0),
                (height, width),
                dtype=torch.float32,
                text_encoder_projection_dim=projection,
            )
        return self._time_ids[key]

    def denoise(self, latents: Tensor, timestep: int, embeddings: Embeddings) -> Tensor:
        """UNet call with ``added_cond_kwargs``, converted to ``eps`` from the prediction type."""
        dtype = self.model_dtype
        factor = self.pipeline.vae_scale_factor
        pooled = embeddings["text_embeds"]
        time_ids = self.time_ids(
            latents.shape[-2] * factor, latents.shape[-1] * factor, pooled.shape[-1]
        )
        model_input = self.scheduler.scale_model_input(latents, timestep)
        output = self.denoiser_call()(
            model_input.to(dtype),
            self.timestep_input(int(timestep)),
            encoder_hidden_states=embeddings["encoder_hidden_states"].to(dtype),
            added_cond_kwargs={
                "text_embeds": pooled.to(dtype),
                "time_ids": time_ids.to(device=latents.device, dtype=dtype).repeat(
                    latents.shape[0], 1
                ),
            },
            return_dict=False,
        )[0].float()
        return self.output_to_epsilon(output, latents, timestep)

    def decoding_vae(self) -> nn.Module:
        """The pipeline's VAE, or a float32 copy of it if it is float16 with ``force_upcast``."""
        vae = self.pipeline.vae
        dtype = next(vae.parameters()).dtype
        if dtype != torch.float16 or not vae.config.get("force_upcast", False):
            return vae
        if self._float32_vae is None:
            self._float32_vae = copy.deepcopy(vae).to(torch.float32).requires_grad_(False).eval()
        return self._float32_vae

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Undo ``latents_mean``/``latents_std`` or ``scaling_factor``, decode, map to [0, 1]."""
        vae = self.decoding_vae()
        config = vae.config
        mean, std = config.get("latents_mean"), config.get("latents_std")
        if mean is not None and std is not None:
            shape = (1, len(mean), 1, 1)
            mean = torch.tensor(mean, device=latents.device).view(shape)
            std = torch.tensor(std, device=latents.device).view(shape)
            scaled = latents * std / config.scaling_factor + mean
        else:
            scaled = latents / config.scaling_factor
        dtype = next(vae.parameters()).dtype
        image = self.vae_decode_call(vae)(scaled.to(dtype), return_dict=False)[0].float()
        return (image / 2 + 0.5).clamp(0, 1)
