"""``NullTextAligner``: the scikit-learn-style estimator users meet first.

>>> aligner = NullTextAligner(pipe, reward="pickscore").fit("a cat on a sofa")
>>> aligner.image_.save("cat.png")
>>> more = aligner.generate(n_images=4, seed=1)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from .adapters import make_adapter
from .callbacks import (
    AlignmentProgressBar,
    FixedNullTrajectory,
    GreedySelection,
    KLAnnealing,
    MemoryProfiler,
)
from .config import AlignmentConfig
from .history import History
from .loading import is_embedded, load_pipeline
from .loop import run_denoising_loop
from .module import NullTextModule
from .rewards import Reward, get_reward

__all__ = ["NotFittedError", "NullTTAError", "NullTextAligner"]

_SHARED_PARAMS = ("pipeline", "reward")


class NullTTAError(Exception):
    """Base class of nulltta's own errors."""


class NotFittedError(NullTTAError, SklearnNotFittedError):
    """A method that needs a fitted aligner was called before ``fit``."""


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, 3, H, W)`` tensor in [0, 1] to PIL images (rounded like diffusers)."""
    arrays = (images.detach().float().clamp(0, 1).cpu().permute(0, 2, 3, 1).numpy() * 255).round()
    return [Image.fromarray(array.astype(np.uint8)) for array in arrays]


def to_tensor(images: Any) -> torch.Tensor:
    """PIL images, a list of them, or a tensor, as a ``(B, 3, H, W)`` float tensor in [0, 1]."""
    if isinstance(images, torch.Tensor):
        return images if images.ndim == 4 else images.unsqueeze(0)
    if isinstance(images, Image.Image):
        images = [images]
    arrays = [np.asarray(image.convert("RGB"), dtype=np.float32) / 255 for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


class NullTextAligner(BaseEstimator):
    """Align a text-to-image diffusion model to a reward by optimising phi' only.

    ``__init__`` stores its arguments; ``fit(prompt)`` validates them, loads
    what it needs and runs Null-TTA (``METHOD.md``). Defaults follow the
    authors' release.

    Parameters
    ----------
    pipeline : diffusers pipeline, str, Path or None, default=None
        The model: a pipeline object (shared, never modified), a diffusers
        folder or hub id, or None / ``"embedded"`` for the model nulltta ships.
    reward : str, Reward or callable, default=None
        Target reward: a name (``nulltta rewards`` lists them, ``"a:0.7,b:0.3"``
        weights several), a :class:`~nulltta.rewards.Reward`, or any callable
        ``(images, prompts) -> scores`` (treated as a black box). None picks
        the model's own default (``"shapes-preference"`` for the embedded model,
        ``"pickscore"`` otherwise).
    guidance_scale : float or None, default=None
        CFG scale s > 1; None uses the family's default (7.5 SD, 5.0 SDXL).
    num_inference_steps : int, default=100
    height, width : int or None
        Image size; None uses the model's native size.
    negative_prompt : str or None
        Text whose embedding is phi (and phi''s starting point); None means "".
    scheduler : {"ddim", "ddpm", "pipeline"} or scheduler, default="ddim"
    eta : float, default=1.0
        DDIM eta; must be > 0 (the method needs a stochastic transition).
    n_min, n_max, schedule_rate, learning_rate, reward_weight, kl_weight, kl_mode,
    sigma_phi_sq, num_candidates, select_initial_noise, gradient, zo_samples, zo_smoothing
        Method settings, see :class:`~nulltta.config.AlignmentConfig`.
    anneal_kl : bool, default=True
        Anneal lambda2 with ``tau_i = max(2 - (1 + c)^i, 0)``; False keeps it constant.
    seed : int, default=0
        Seed of the run's single generator (noise, candidates, zero-order directions).
    callbacks : list of lightning.Callback, optional
        Extra callbacks, run after the built-in ones.
    progress : bool, default=False
        Show a progress bar.
    profile_memory : bool, default=True
        Record each step's peak memory in the history.
    device, torch_dtype : optional
        Used only when nulltta loads the pipeline itself.

    Attributes
    ----------
    prompt_ : str
    phi_ : Tensor
        phi' at every step, ``(T, 1, ...)`` (``(T, 1, 77, 768)`` for SD1.5).
    image_ : PIL.Image.Image
    latents_ : Tensor
        The final latent.
    reward_ : float
        Target reward of ``image_``.
    history_ : History
        One row per denoising step (see :mod:`nulltta.history`).
    module_ : NullTextModule
    pipeline_ : diffusers pipeline
    reward_fn_ : Reward

    """

    def __init__(
        self,
        pipeline: Any = None,
        reward: Any = None,
        *,
        guidance_scale: float | None = None,
        num_inference_steps: int = 100,
        height: int | None = None,
        width: int | None = None,
        negative_prompt: str | None = None,
        scheduler: Any = "ddim",
        eta: float = 1.0,
        n_min: int = 5,
        n_max: int = 25,
        schedule_rate: float = 0.008,
        learning_rate: float = 1e-2,
        reward_weight: float | None = None,
        kl_weight: float = 0.002,
        kl_mode: str = "paper",
        sigma_phi_sq: float = 0.01,
        anneal_kl: bool = True,
        num_candidates: int = 3,
        select_initial_noise: bool = True,
        gradient: str = "auto",
        zo_samples: int = 4,
        zo_smoothing: float = 0.02,
        seed: int = 0,
        callbacks: Sequence[Any] | None = None,
        progress: bool = False,
        profile_memory: bool = True,
        device: str | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.reward = reward
        self.guidance_scale = guidance_scale
        self.num_inference_steps = num_inference_steps
        self.height = height
        self.width = width
        self.negative_prompt = negative_prompt
        self.scheduler = scheduler
        self.eta = eta
        self.n_min = n_min
        self.n_max = n_max
        self.schedule_rate = schedule_rate
        self.learning_rate = learning_rate
        self.reward_weight = reward_weight
        self.kl_weight = kl_weight
        self.kl_mode = kl_mode
        self.sigma_phi_sq = sigma_phi_sq
        self.anneal_kl = anneal_kl
        self.num_candidates = num_candidates
        self.select_initial_noise = select_initial_noise
        self.gradient = gradient
        self.zo_samples = zo_samples
        self.zo_smoothing = zo_smoothing
        self.seed = seed
        self.callbacks = callbacks
        self.progress = progress
        self.profile_memory = profile_memory
        self.device = device
        self.torch_dtype = torch_dtype

    # --- scikit-learn protocol ------------------------------------------------
    def __sklearn_clone__(self) -> NullTextAligner:
        """Clone with the pipeline and reward shared, everything else copied."""
        params = self.get_params(deep=False)
        copied = {k: clone(v, safe=False) for k, v in params.items() if k not in _SHARED_PARAMS}
        new = type(self)(**copied, **{k: params[k] for k in _SHARED_PARAMS})
        if hasattr(self, "pipeline_"):
            new._pipeline_cache = (self.pipeline, self.pipeline_)
        return new

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "phi_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(prompt) first "
                "(or NullTextAligner.load(path) for a saved phi' trajectory)."
            )

    # --- set-up (skorch-style initialize_* steps) -------------------------------
    def _config(self, guidance_scale: float) -> AlignmentConfig:
        return AlignmentConfig(
            guidance_scale=guidance_scale,
            num_inference_steps=self.num_inference_steps,
            n_min=self.n_min,
            n_max=self.n_max,
            schedule_rate=self.schedule_rate,
            learning_rate=self.learning_rate,
            reward_weight=self.reward_weight,
            kl_weight=self.kl_weight,
            kl_mode=self.kl_mode,
            sigma_phi_sq=self.sigma_phi_sq,
            num_candidates=self.num_candidates,
            select_initial_noise=self.select_initial_noise,
            gradient=self.gradient,
            zo_samples=self.zo_samples,
            zo_smoothing=self.zo_smoothing,
        ).validate()

    def _check_params(self) -> None:
        """Everything that can be checked before loading a model."""
        self._config(7.5 if self.guidance_scale is None else self.guidance_scale)
        if not self.eta > 0:
            raise ValueError(
                f"eta={self.eta}: Null-TTA needs a stochastic sampler (its KL and candidate "
                "selection are over Gaussian transitions); use eta > 0, e.g. 1.0 as released."
            )
        if self.callbacks is not None and not isinstance(self.callbacks, (list, tuple)):
            raise TypeError("callbacks must be a list of lightning Callback objects")

    def initialize_pipeline(self) -> Any:
        """Load (or reuse) the pipeline into ``pipeline_``."""
        cache = getattr(self, "_pipeline_cache", None)
        if cache is not None and cache[0] is self.pipeline:
            self.pipeline_ = cache[1]
        else:
            self.pipeline_ = load_pipeline(self.pipeline, self.device, self.torch_dtype)
            self._pipeline_cache = (self.pipeline, self.pipeline_)
        return self.pipeline_

    def initialize_reward(self) -> Reward:
        """Resolve the reward into ``reward_fn_`` on the pipeline's device."""
        reward = self.reward
        if reward is None:
            reward = "shapes-preference" if is_embedded(self.pipeline) else "pickscore"
        self.reward_fn_ = get_reward(reward)
        return self.reward_fn_

    def _callbacks(self, config: AlignmentConfig, extra: Sequence[Any] = ()) -> list[Any]:
        callbacks: list[Any] = []
        if self.anneal_kl:
            callbacks.append(KLAnnealing(config.schedule_rate))
        if config.num_candidates > 1:
            callbacks.append(GreedySelection(config.num_candidates, config.select_initial_noise))
        callbacks.extend(extra)
        if self.profile_memory:
            callbacks.append(MemoryProfiler())
        if self.progress:
            callbacks.append(AlignmentProgressBar())
        return callbacks + list(self.callbacks or [])

    def _prepare(self, prompt: str) -> tuple[Any, AlignmentConfig, int, int]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                "prompt must be one non-empty string; to align several prompts, fit one "
                "clone per prompt (sklearn.base.clone(aligner))."
            )
        self._check_params()
        pipeline = self.initialize_pipeline()
        adapter = make_adapter(pipeline, scheduler=self.scheduler, eta=self.eta)
        guidance = (
            adapter.default_guidance_scale if self.guidance_scale is None else self.guidance_scale
        )
        config = self._config(guidance)
        default_h, default_w = adapter.default_resolution()
        height = default_h if self.height is None else self.height
        width = default_w if self.width is None else self.width
        adapter.check_resolution(height, width)
        if is_embedded(self.pipeline):
            from .shapes.world import check_prompt

            check_prompt(prompt)
        reward = self.initialize_reward().to(adapter.device)
        reward.eval()
        return adapter, config, height, width

    def _run(
        self,
        prompt: str,
        seed: int,
        config: AlignmentConfig,
        adapter: Any,
        height: int,
        width: int,
        extra_callbacks: Sequence[Any] = (),
    ) -> NullTextModule:
        module = NullTextModule(adapter, self.reward_fn_, config)
        generator = torch.Generator(adapter.device).manual_seed(int(seed))
        module.start_trajectory(
            prompt, height, width, generator, negative_prompt=self.negative_prompt
        )
        return run_denoising_loop(module, self._callbacks(config, extra_callbacks))

    def _finish(self, module: NullTextModule) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            images = module.adapter.decode(module.trajectory.latents)
            scores = module.score_images(images)
        return images, scores

    # --- public API ---------------------------------------------------------------
    def fit(self, prompt: str, y: None = None) -> NullTextAligner:
        """Run Null-TTA for ``prompt`` with ``seed``; starts from scratch every call.

        Returns
        -------
        NullTextAligner
            ``self``, with the fitted attributes set.

        """
        adapter, config, height, width = self._prepare(prompt)
        module = self._run(prompt, self.seed, config, adapter, height, width)
        images, scores = self._finish(module)
        self.prompt_ = prompt
        self.module_ = module
        self.config_ = config
        self.resolution_ = (height, width)
        self.timesteps_ = list(module.trajectory.timesteps)
        self.phi_ = torch.stack(module.trajectory.phi)
        self.latents_ = module.trajectory.latents.detach().cpu()
        self.image_ = to_pil(images)[0]
        self.reward_ = float(scores[0])
        self.history_ = History(module.trajectory.history)
        return self

    def generate(
        self,
        n_images: int = 1,
        seed: int | None = None,
        reoptimize: bool = True,
        output_type: str = "pil",
    ) -> list[Image.Image] | torch.Tensor:
        """More images of the fitted prompt, one run per seed ``seed, seed + 1, ...``.

        Parameters
        ----------
        n_images : int, default=1
        seed : int, optional
            First seed; defaults to ``self.seed + 1`` so the fitted image is not repeated.
        reoptimize : bool, default=True
            True runs the full method per image. False replays the fitted phi'
            trajectory with no optimisation and no candidate selection
            (amortised alignment, at the cost of a plain CFG sample).
        output_type : {"pil", "pt"}, default="pil"
            PIL images, or one ``(n, 3, H, W)`` tensor in [0, 1].

        """
        self._check_is_fitted()
        if n_images < 1:
            raise ValueError(f"n_images={n_images} must be >= 1")
        adapter, config, height, width = self._prepare(self.prompt_)
        extra: list[Any] = []
        if not reoptimize:
            config = _no_optimisation(config)
            extra = [FixedNullTrajectory(self.phi_)]
        first = self.seed + 1 if seed is None else seed
        images = [
            self._finish(self._run(self.prompt_, first + k, config, adapter, height, width, extra))[
                0
            ]
            for k in range(n_images)
        ]
        return _format_images(torch.cat(images), output_type)

    def sample_baseline(
        self,
        prompt: str | None = None,
        n_images: int = 1,
        seed: int | None = None,
        output_type: str = "pil",
    ) -> list[Image.Image] | torch.Tensor:
        """Plain CFG samples with the same sampler and seeds: no phi' change, K = 1.

        With zero inner steps and one candidate the method reduces to the
        stock diffusers sampler, so these equal ``pipe(prompt, eta=eta, ...)``
        with the same scheduler and generator seed. ``seed`` defaults to ``self.seed``.
        """
        prompt = prompt if prompt is not None else getattr(self, "prompt_", None)
        if prompt is None:
            raise ValueError("pass a prompt, or fit the aligner first")
        adapter, config, height, width = self._prepare(prompt)
        config = _no_optimisation(config)
        first = self.seed if seed is None else seed
        images = [
            self._finish(self._run(prompt, first + k, config, adapter, height, width))[0]
            for k in range(n_images)
        ]
        return _format_images(torch.cat(images), output_type)

    def score(self, images: Any, prompt: str | None = None) -> float:
        """Mean target reward of ``images`` (PIL, list of PIL, or tensor in [0, 1])."""
        self._check_is_fitted()
        if not hasattr(self, "reward_fn_"):
            self.initialize_reward()
        tensor = to_tensor(images).to(self.reward_fn_.device)
        with torch.no_grad():
            scores = self.reward_fn_(tensor, prompt or self.prompt_)
        return float(scores.mean())

    # --- persistence ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``phi.safetensors``, ``config.json`` and the image to a folder."""
        self._check_is_fitted()
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(
            {"phi": self.phi_.contiguous(), "latents": self.latents_.contiguous()},
            folder / "phi.safetensors",
        )
        params = {k: v for k, v in self.get_params(deep=False).items() if _json_safe(v)}
        state = {
            "params": params,
            "prompt": self.prompt_,
            "timesteps": self.timesteps_,
            "resolution": list(self.resolution_),
            "reward": self.reward_,
            "config": self.config_.to_dict(),
        }
        (folder / "config.json").write_text(json.dumps(state, indent=1))
        self.image_.save(folder / "image.png")
        return folder

    @classmethod
    def load(cls, path: str | Path, pipeline: Any = None, reward: Any = None) -> NullTextAligner:
        """Rebuild a fitted aligner from :meth:`save` output, for ``generate``.

        ``pipeline`` and ``reward`` replace the saved names when given (objects
        are not saved).
        """
        folder = Path(path)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{folder} has no config.json; pass a folder written by save()")
        state = json.loads((folder / "config.json").read_text())
        params = dict(state["params"])
        if pipeline is not None:
            params["pipeline"] = pipeline
        if reward is not None:
            params["reward"] = reward
        aligner = cls(**params)
        tensors = load_file(folder / "phi.safetensors")
        aligner.phi_ = tensors["phi"]
        aligner.latents_ = tensors["latents"]
        aligner.prompt_ = state["prompt"]
        aligner.timesteps_ = state["timesteps"]
        aligner.resolution_ = tuple(state["resolution"])
        aligner.reward_ = state["reward"]
        aligner.config_ = AlignmentConfig(**state["config"])
        aligner.history_ = History()
        if (folder / "image.png").exists():
            aligner.image_ = Image.open(folder / "image.png").convert("RGB")
        return aligner


def _format_images(images: torch.Tensor, output_type: str) -> list[Image.Image] | torch.Tensor:
    if output_type == "pt":
        return images.cpu()
    if output_type == "pil":
        return to_pil(images)
    raise ValueError(f"output_type={output_type!r}; use 'pil' or 'pt'")


def _no_optimisation(config: AlignmentConfig) -> AlignmentConfig:
    from dataclasses import replace

    return replace(config, n_min=0, n_max=0, num_candidates=1, select_initial_noise=False)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
