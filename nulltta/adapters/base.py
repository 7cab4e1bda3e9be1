"""The small interface the core loop needs from a model family.

An adapter turns a diffusers pipeline into five operations: encode a prompt
into the conditional and null embeddings, predict the noise ``eps`` for a
latent and an embedding, give the step coefficients of a timestep, decode
latents to images in [0, 1], and draw initial latents. The core loop never
branches on the family.

Embeddings are dicts of tensors with the batch first (``{"encoder_hidden_states":
(B, L, D)}`` for SD; SDXL adds pooled embeddings and time ids). ``trainable_keys``
names the entries that make up ``phi'``; they are packed into one tensor so
that the LightningModule has exactly one parameter.
"""

from __future__ import annotations

import math
import warnings
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..equations import StepCoefficients, to_epsilon
from ..schedulers import make_scheduler, step_coefficients
from ..speedups import autocast as autocast_context
from ..speedups import resolve_autocast
from .embeddings import Embeddings

__all__ = ["PipelineAdapter"]

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class PipelineAdapter(ABC):
    """Base class of the per-family adapters.

    Parameters
    ----------
    pipeline : DiffusionPipeline
        The user's pipeline; its modules are used, never modified.
    scheduler : str or scheduler, default="ddim"
        See :func:`nulltta.schedulers.make_scheduler`.
    eta : float, default=1.0
        DDIM eta (1 = ancestral, as released).
    gradient_checkpointing : bool or None, default=None
        Turn on the denoiser's and the VAE's gradient checkpointing for the
        duration of a run (:meth:`frozen`), then restore it. None uses the
        family's ``default_gradient_checkpointing`` (on for SDXL and SD3).

    """

    family: ClassVar[str] = ""
    default_guidance_scale: ClassVar[float] = 7.5
    default_gradient_checkpointing: ClassVar[bool] = False
    trainable_keys: ClassVar[tuple[str, ...]] = ("encoder_hidden_states",)
    #: Autocast dtypes of the denoiser and of the VAE decoder on CUDA when the
    #: user asks for "auto": the release runs SD's UNet in fp16 and its VAE in fp32.
    cuda_denoiser_dtype: ClassVar[str | None] = "float16"
    cuda_vae_dtype: ClassVar[str | None] = None

    def __init__(
        self,
        pipeline: Any,
        scheduler: Any = "ddim",
        eta: float = 1.0,
        gradient_checkpointing: bool | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.scheduler = self.build_scheduler(scheduler)
        self.eta = eta
        self.gradient_checkpointing = gradient_checkpointing
        self._trainable_shapes: dict[str, tuple[int, ...]] = {}
        self._checkpointing_enabled: list[nn.Module] = []
        self.denoiser_autocast: str | None = None
        self.vae_autocast: str | None = None
        self.gradient_decoder: nn.Module | None = None
        self._compiled: dict[str, Any] = {}
        self._timestep_tensors: dict[tuple[Any, torch.device], Tensor] = {}
        self._tf32_flags: tuple[bool, bool] | None = None

    def build_scheduler(self, choice: Any) -> Any:
        """A fresh DDIM or DDPM scheduler (:func:`~nulltta.schedulers.make_scheduler`)."""
        return make_scheduler(choice, self.pipeline.scheduler)

    # --- properties --------------------------------------------------------
    @property
    @abstractmethod
    def denoiser(self) -> nn.Module:
        """The UNet or transformer."""

    @property
    def device(self) -> torch.device:
        """Device of the denoiser's weights."""
        return next(self.denoiser.parameters()).device

    @property
    def model_dtype(self) -> torch.dtype:
        """Dtype of the denoiser's weights (inputs are cast to it)."""
        return next(self.denoiser.parameters()).dtype

    @abstractmethod
    def frozen_modules(self) -> list[nn.Module]:
        """Every module whose weights must stay untouched."""

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Turn off weight gradients for the duration, then restore the flags.

        Only activations need gradients: freezing keeps weight ``.grad``
        buffers from ever being allocated.
        """
        modules = self.frozen_modules()
        if self.gradient_decoder is not None:
            modules = [*modules, self.gradient_decoder]
        flags = [(p, p.requires_grad) for m in modules for p in m.parameters()]
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        try:
            self.enter_run()
            yield
        finally:
            self.exit_run()
            for parameter, flag in flags:
                parameter.requires_grad_(flag)

    def checkpointed_modules(self) -> list[nn.Module]:
        """Modules whose gradient checkpointing a run turns on: the denoiser and the VAE."""
        modules = [self.denoiser, getattr(self.pipeline, "vae", None)]
        return [m for m in modules if m is not None]

    def enter_run(self) -> None:
        """Called as a run starts (inside :meth:`frozen`): turn on gradient checkpointing.

        Only on modules that support it and do not have it on already; those
        are switched back off by :meth:`exit_run`.
        """
        if self.device.type == "cuda":
            # TF32 matmuls and convolutions for the float32 parts (the reward, the VAE).
            self._tf32_flags = (
                torch.backends.cuda.matmul.allow_tf32,
                torch.backends.cudnn.allow_tf32,
            )
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        enabled = self.gradient_checkpointing
        if enabled is None:
            enabled = self.default_gradient_checkpointing
        self._checkpointing_enabled = []
        if not enabled:
            return
        for module in self.checkpointed_modules():
            if getattr(module, "_supports_gradient_checkpointing", False) and not (
                module.is_gradient_checkpointing
            ):
                module.enable_gradient_checkpointing()
                self._checkpointing_enabled.append(module)

    def exit_run(self) -> None:
        """Called as a run ends: undo what :meth:`enter_run` turned on."""
        for module in self._checkpointing_enabled:
            module.disable_gradient_checkpointing()
        self._checkpointing_enabled = []
        if self._tf32_flags is not None:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (
                self._tf32_flags
            )
            self._tf32_flags = None

    # --- resolution and latents -------------------------------------------
    @abstractmethod
    def default_resolution(self) -> tuple[int, int]:
        """``(height, width)`` the model was trained at."""

    @abstractmethod
    def resolution_multiple(self) -> int:
        """Height and width must be multiples of this."""

    def check_resolution(self, height: int, width: int) -> None:
        """Raise a ValueError naming valid sizes if the model cannot take ``height x width``."""
        multiple = self.resolution_multiple()
        for name, value in (("height", height), ("width", width)):
            if value <= 0 or value % multiple:
                lower = max(multiple, (max(value, 1) // multiple) * multiple)
                raise ValueError(
                    f"{name}={value} is not a positive multiple of {multiple} for this "
                    f"{self.family} model; use e.g. {lower} or {lower + multiple}."
                )

    @abstractmethod
    def latent_shape(self, batch_size: int, height: int, width: int) -> tuple[int, ...]:
        """Shape of the latents for images of ``height x width``."""

    def prepare_latents(
        self, batch_size: int, height: int, width: int, generator: torch.Generator | None
    ) -> Tensor:
        """Initial noise, drawn as the pipeline draws it (float32)."""
        from diffusers.utils.torch_utils import randn_tensor

        shape = self.latent_shape(batch_size, height, width)
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=torch.float32)
        return latents * self.scheduler.init_noise_sigma

    # --- schedule ----------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> list[int]:
        """Set the scheduler's timesteps and return them as ints."""
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        return [int(t) for t in self.scheduler.timesteps]

    def step_coefficients(self, timestep: int) -> StepCoefficients:
        """Coefficients of one step from ``timestep`` (see :class:`StepCoefficients`)."""
        return step_coefficients(self.scheduler, timestep, self.eta)

    # --- text --------------------------------------------------------------
    @abstractmethod
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None = None
    ) -> tuple[Embeddings, Embeddings]:
        """Return ``(c, phi)`` for one prompt, batch size 1, on the model's device."""

    def warn_if_truncated(self, prompt: str, tokenizer: Any) -> None:
        """Warn when the tokenizer would cut the prompt."""
        if tokenizer is None:
            return
        num_tokens = len(tokenizer(prompt, truncation=False).input_ids)
        if num_tokens > tokenizer.model_max_length:
            warnings.warn(
                f"the prompt has {num_tokens} tokens but the text encoder takes "
                f"{tokenizer.model_max_length}: it was truncated to its first "
                f"{tokenizer.model_max_length} tokens. Shorten it to keep every word.",
                UserWarning,
                stacklevel=3,
            )

    # --- phi' on the text manifold (the "text_manifold" parameterisation) ---
    def null_token_embeddings(self, negative_prompt: str | None = None) -> Tensor:
        """The negative prompt's input token embeddings e, ``(1, L, D)``: phi = encoder(e)."""
        raise NotImplementedError(
            f"null_parameterisation='text_manifold' is not available for {self.family} models "
            "(it needs a single CLIP text encoder, as SD 1.x/2.x have); use 'embedding'."
        )

    def encode_null_from_tokens(
        self, token_embeddings: Tensor, negative_prompt: str | None = None
    ) -> Embeddings:
        """The null embeddings the text encoder gives for input token embeddings e'."""
        raise NotImplementedError(
            f"null_parameterisation='text_manifold' is not available for {self.family} models"
        )

    # --- phi' as one tensor -------------------------------------------------
    def pack_null(self, null: Embeddings) -> Tensor:
        """Gather the trainable entries of ``phi`` into one float32 tensor.

        With a single trainable entry the tensor keeps its natural shape
        (``(B, L, D)`` for SD); several entries are flattened and concatenated.
        """
        self._trainable_shapes = {key: tuple(null[key].shape[1:]) for key in self.trainable_keys}
        if len(self.trainable_keys) == 1:
            return null[self.trainable_keys[0]].float()
        return torch.cat([null[key].float().flatten(1) for key in self.trainable_keys], dim=1)

    def unpack_null(self, packed: Tensor, null: Embeddings) -> Embeddings:
        """Inverse of :meth:`pack_null`; untrained entries of ``null`` are kept."""
        out = dict(null)
        if len(self.trainable_keys) == 1:
            out[self.trainable_keys[0]] = packed
            return out
        offset = 0
        for key in self.trainable_keys:
            shape = self._trainable_shapes[key]
            size = math.prod(shape)
            out[key] = packed[:, offset : offset + size].reshape(packed.shape[0], *shape)
            offset += size
        return out

    # --- precision and compilation ------------------------------------------
    def set_precision(self, denoiser: str | None, vae: str | None) -> None:
        """Run the denoiser and the VAE decoder under autocast to these dtypes (None: float32).

        "auto" takes the family's choice on CUDA (:attr:`cuda_denoiser_dtype`,
        :attr:`cuda_vae_dtype`) and float32 elsewhere.
        """
        device_type = self.device.type
        self.denoiser_autocast = resolve_autocast(denoiser, self.cuda_denoiser_dtype, device_type)
        self.vae_autocast = resolve_autocast(vae, self.cuda_vae_dtype, device_type)

    def compile(self, mode: str | None, backend: str = "inductor") -> None:
        """``torch.compile`` the denoiser and the VAE decoder (None undoes it).

        The user's modules are not changed: compiled wrappers are kept here.
        ``backend`` is ``torch.compile``'s (inductor generates code; the tests
        use ``"aot_eager"``, which traces the same graphs without it).
        Shapes are static (``dynamic=False``) and the timestep is passed as a
        tensor (:meth:`timestep_input`), so one graph serves every timestep.
        """
        self._compiled = {}
        if mode is None:
            return
        vae = self.decoding_vae()
        # One wrapper per module and mode, shared by every adapter of the pipeline,
        # so a second fit does not compile again.
        for key, module, target in (
            ("denoiser", self.denoiser, self.denoiser),
            ("vae_decode", vae, vae.decode),
        ):
            wrappers = _COMPILED.setdefault(module, {})
            if (mode, backend) not in wrappers:
                wrappers[(mode, backend)] = torch.compile(
                    target, mode=None if backend != "inductor" else mode, backend=backend,
                    dynamic=False,
                )  # fmt: skip
            self._compiled[key] = wrappers[(mode, backend)]

    def denoiser_call(self) -> Any:
        """The denoiser to call: its compiled wrapper when :meth:`compile` made one."""
        return self._compiled.get("denoiser", self.denoiser)

    def vae_decode_call(self, vae: nn.Module) -> Any:
        """``vae.decode``, or its compiled wrapper for the decoding VAE."""
        if "vae_decode" in self._compiled and vae is self.decoding_vae():
            return self._compiled["vae_decode"]
        return vae.decode

    def timestep_input(self, timestep: Any, dtype: torch.dtype = torch.int64) -> Tensor:
        """``timestep`` as a 0-d tensor on the model's device, made once per value.

        A Python number would be turned into a tensor by the UNet at every call
        (a host-to-device copy) and would make ``torch.compile`` specialise on it.
        """
        device = self.device
        key = (timestep, device)
        if key not in self._timestep_tensors:
            self._timestep_tensors[key] = torch.tensor(timestep, dtype=dtype, device=device)
        return self._timestep_tensors[key]

    def decoding_vae(self) -> nn.Module:
        """The VAE module that decodes (a family may substitute a float32 copy)."""
        return self.pipeline.vae

    # --- the networks ----------------------------------------------------
    def predict_noise(self, latents: Tensor, timestep: Any, embeddings: Embeddings) -> Tensor:
        """Noise prediction ``eps(x_t, t, e)`` in float32, batch matching ``latents``.

        More generally, the prediction ``p`` in which :meth:`step_coefficients`
        are written: ``x_t = signal x0 + noise p`` and the step mean is
        ``a x_t + b p``. That is ``eps`` for diffusion models and the velocity
        for rectified flow (``signal = 1``, ``noise = sigma``). Runs under the
        precision set by :meth:`set_precision`.
        """
        with autocast_context(self.device, self.denoiser_autocast):
            output = self.denoise(latents, timestep, embeddings)
        return output.float()

    @abstractmethod
    def denoise(self, latents: Tensor, timestep: Any, embeddings: Embeddings) -> Tensor:
        """The family's denoiser call behind :meth:`predict_noise`."""

    def output_to_epsilon(self, output: Tensor, latents: Tensor, timestep: int) -> Tensor:
        """Convert a variance-preserving model's output to ``eps`` by the scheduler's type.

        See :func:`nulltta.equations.to_epsilon`; ``"epsilon"`` passes through.
        """
        prediction_type = self.scheduler.config.prediction_type
        if prediction_type == "epsilon":
            return output
        alpha_bar = float(self.scheduler.alphas_cumprod[int(timestep)])
        return to_epsilon(output, latents, alpha_bar**0.5, (1 - alpha_bar) ** 0.5, prediction_type)

    def decode(self, latents: Tensor) -> Tensor:
        """Images in [0, 1], float32, ``(B, 3, H, W)``; differentiable.

        Runs under the VAE precision set by :meth:`set_precision`.
        """
        with autocast_context(self.device, self.vae_autocast):
            images = self.decode_latents(latents)
        return images.float()

    @abstractmethod
    def decode_latents(self, latents: Tensor) -> Tensor:
        """The family's VAE decode behind :meth:`decode`, mapped to [0, 1]."""

    def decode_for_gradient(self, latents: Tensor) -> Tensor:
        """The decode the reward's gradient goes through in the inner loop.

        The full VAE (:meth:`decode`), or the light :attr:`gradient_decoder`
        (a diffusers ``AutoencoderTiny``, TAESD-style) when one is set:
        candidate scoring and final images always use the full VAE.
        """
        decoder = self.gradient_decoder
        if decoder is None:
            return self.decode(latents)
        with autocast_context(self.device, self.vae_autocast):
            image = decoder.decode(latents / decoder.config.scaling_factor, return_dict=False)[0]
        return (image.float() / 2 + 0.5).clamp(0, 1)
