"""``NullTextAligner``: the scikit-learn-style estimator users meet first.

>>> aligner = NullTextAligner(pipe, reward="pickscore").fit("a cat on a sofa")
>>> aligner.image_.save("cat.png")
>>> more = aligner.generate(n_images=4, seed=1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from sklearn.base import BaseEstimator, clone

from .adapters import make_adapter
from .callbacks import FixedNullTrajectory, method_callbacks
from .config import AlignmentConfig, config_from
from .errors import NotFittedError, NullTTAError
from .history import History
from .images import format_images, to_pil, to_tensor
from .loading import is_embedded, load_pipeline
from .loop import run_denoising_loop
from .module import NullTextModule
from .persistence import load_fitted, save_fitted
from .rewards import Reward, get_reward

__all__ = ["NotFittedError", "NullTTAError", "NullTextAligner", "to_pil", "to_tensor"]

_SHARED_PARAMS = ("pipeline", "reward")


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
        CFG scale s > 1; None uses the model's default (7.5 SD, 5.0 SDXL and
        the embedded model).
    num_inference_steps : int, default=100
    height, width : int or None
        Image size; None uses the model's native size.
    negative_prompt : str or None
        Text whose embedding is phi (and phi''s starting point); None means "".
    scheduler : {"ddim", "ddpm", "pipeline"} or scheduler, default="ddim"
    eta : float, default=1.0
        DDIM eta; must be > 0 (the method needs a stochastic transition).
    n_min, n_max, schedule_rate, learning_rate, reward_weight, kl_mode, sigma_phi_sq,
    num_candidates, select_initial_noise, gradient, zo_samples, zo_smoothing
        Method settings, see :class:`~nulltta.config.AlignmentConfig`.
    kl_weight : float or None, default=None
        lambda2; None uses the model's value: the release's 0.002, or 0.2 for
        the embedded model, whose 16x128 null embedding and reward scale make
        0.002 too weak to hold prompt fidelity (``docs/concepts/regularisation.md``).
    anneal_kl : bool or None, default=None
        Anneal lambda2 with ``tau_i = max(2 - (1 + c)^i, 0)`` (to zero near 87%
        of the steps); None uses the model's setting: True as released, False
        for the embedded model.
    gradient_checkpointing, autocast_dtype, decode_scale, early_stop_patience,
    early_stop_tolerance, optimize_every
        Speed and memory options, all off by default; see
        :class:`~nulltta.config.AlignmentConfig` and :mod:`nulltta.speedups`.
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
        kl_weight: float | None = None,
        kl_mode: str = "paper",
        sigma_phi_sq: float = 0.01,
        anneal_kl: bool | None = None,
        num_candidates: int = 3,
        select_initial_noise: bool = True,
        gradient: str = "auto",
        zo_samples: int = 4,
        zo_smoothing: float = 0.02,
        gradient_checkpointing: bool = False,
        autocast_dtype: str | None = None,
        decode_scale: float = 1.0,
        early_stop_patience: int | None = None,
        early_stop_tolerance: float = 0.0,
        optimize_every: int = 1,
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
        self.gradient_checkpointing = gradient_checkpointing
        self.autocast_dtype = autocast_dtype
        self.decode_scale = decode_scale
        self.early_stop_patience = early_stop_patience
        self.early_stop_tolerance = early_stop_tolerance
        self.optimize_every = optimize_every
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
    def _config(self, adapter: Any = None) -> AlignmentConfig:
        """The method settings; those left None take the model's values."""
        model_defaults = {}
        if adapter is not None:
            model_defaults["guidance_scale"] = adapter.default_guidance_scale
        if self._uses_embedded_model():
            from .shapes.model import ALIGNMENT_DEFAULTS

            model_defaults.update(ALIGNMENT_DEFAULTS)
        return config_from(
            {f.name: getattr(self, f.name) for f in fields(AlignmentConfig)}, model_defaults
        )

    def _uses_embedded_model(self) -> bool:
        return is_embedded(self.pipeline) or is_embedded(getattr(self, "pipeline_", False))

    def _check_params(self) -> None:
        """Everything that can be checked before loading a model."""
        self._config()
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
            reward = "shapes-preference" if self._uses_embedded_model() else "pickscore"
        self.reward_fn_ = get_reward(reward)
        return self.reward_fn_

    def _prepare(self, prompt: str) -> tuple[Any, AlignmentConfig, int, int]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                "prompt must be one non-empty string; to align several prompts, fit one "
                "clone per prompt (sklearn.base.clone(aligner))."
            )
        self._check_params()
        pipeline = self.initialize_pipeline()
        adapter = make_adapter(pipeline, scheduler=self.scheduler, eta=self.eta)
        config = self._config(adapter)
        default_h, default_w = adapter.default_resolution()
        height = default_h if self.height is None else self.height
        width = default_w if self.width is None else self.width
        adapter.check_resolution(height, width)
        if self._uses_embedded_model():
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
        callbacks = method_callbacks(
            config, extra_callbacks, profile_memory=self.profile_memory, progress=self.progress
        )
        return run_denoising_loop(module, callbacks + list(self.callbacks or []))

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
            config = config.plain_sampling()
            extra = [FixedNullTrajectory(self.phi_)]
        first = self.seed + 1 if seed is None else seed
        images = [
            self._finish(self._run(self.prompt_, first + k, config, adapter, height, width, extra))[
                0
            ]
            for k in range(n_images)
        ]
        return format_images(torch.cat(images), output_type)

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
        config = config.plain_sampling()
        first = self.seed if seed is None else seed
        images = [
            self._finish(self._run(prompt, first + k, config, adapter, height, width))[0]
            for k in range(n_images)
        ]
        return format_images(torch.cat(images), output_type)

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
        """Write the fitted phi' trajectory and settings to a folder (see nulltta.persistence)."""
        self._check_is_fitted()
        return save_fitted(self, path)

    @classmethod
    def load(cls, path: str | Path, pipeline: Any = None, reward: Any = None) -> NullTextAligner:
        """Rebuild a fitted aligner from :meth:`save` output, for ``generate``.

        ``pipeline`` and ``reward`` replace the saved names when given (objects
        are not saved).
        """
        params, fitted = load_fitted(path)
        if pipeline is not None:
            params["pipeline"] = pipeline
        if reward is not None:
            params["reward"] = reward
        aligner = cls(**params)
        for name, value in fitted.items():
            setattr(aligner, name, value)
        return aligner
