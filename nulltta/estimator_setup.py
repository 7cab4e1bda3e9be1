"""The estimator's set-up steps, skorch-style: validate, load, resolve, then run batches.

:class:`EstimatorSetup` is the base of :class:`~nulltta.NullTextAligner`. It
holds what every public method does before and around the method itself:
scikit-learn's clone protocol, checking the parameters, loading the pipeline
(``initialize_pipeline``), finding the model's profile (``initialize_profile``)
and the reward (``initialize_reward``), resolving the settings the model
decides (:func:`nulltta.config.config_from`), and running the (prompt, seed)
pairs ``batch_size`` trajectories at a time (:meth:`EstimatorSetup._align`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import torch
from sklearn.base import BaseEstimator, clone

from .adapters import make_adapter
from .aligned import AlignedImage, finish_batch
from .callbacks import method_callbacks
from .config import AlignmentConfig, config_from
from .errors import NotFittedError
from .loading import load_pipeline
from .loop import run_denoising_loop
from .module import NullTextModule
from .profiles import ModelProfile, model_profile
from .rewards import Reward, get_reward

__all__ = ["PLURAL_ATTRIBUTES", "SINGLE_ATTRIBUTES", "EstimatorSetup"]

#: Parameters a clone shares instead of copying (a pipeline may weigh gigabytes).
SHARED_PARAMS = ("pipeline", "reward", "gradient_decoder")
#: What ``fit(prompt)`` sets, and what ``fit(prompts)`` sets.
SINGLE_ATTRIBUTES = ("prompt_", "phi_", "latents_", "image_", "reward_", "history_")
PLURAL_ATTRIBUTES = (
    "prompts_", "seeds_", "phis_", "all_latents_", "images_", "rewards_", "histories_"
)  # fmt: skip


class EstimatorSetup(BaseEstimator):
    """Set-up steps shared by every public method of the estimator (see the module)."""

    #: The LightningModule each batch of trajectories runs in; a subclass of the
    #: estimator may name a subclass of it (another parameterisation of phi', for one).
    module_class: type[NullTextModule] = NullTextModule

    # --- scikit-learn protocol ------------------------------------------------
    def __sklearn_clone__(self) -> EstimatorSetup:
        """Clone with the pipeline and reward shared, everything else copied."""
        params = self.get_params(deep=False)
        copied = {k: clone(v, safe=False) for k, v in params.items() if k not in SHARED_PARAMS}
        new = type(self)(**copied, **{k: params[k] for k in SHARED_PARAMS})
        if hasattr(self, "pipeline_"):
            new._pipeline_cache = (self.pipeline, self.pipeline_)
        return new

    def _check_is_fitted(self) -> None:
        if not (hasattr(self, "phi_") or hasattr(self, "phis_")):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(prompt) first "
                "(or NullTextAligner.load(path) for a saved phi' trajectory)."
            )

    # --- set-up (skorch-style initialize_* steps) -------------------------------
    def _config(self, profile: ModelProfile | None = None) -> AlignmentConfig:
        """The method settings; those left None take the model's values."""
        settings = {f.name: getattr(self, f.name) for f in fields(AlignmentConfig)}
        return config_from(settings, None if profile is None else profile.defaults)

    def _check_params(self) -> None:
        """Everything that can be checked before loading a model."""
        self._config()
        if not self.eta > 0:
            raise ValueError(
                f"eta={self.eta}: Null-TTA needs a stochastic sampler (its KL and candidate "
                "selection are over Gaussian transitions); use eta > 0, e.g. 1.0 as released."
            )
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise ValueError(f"batch_size must be an integer, got {self.batch_size!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
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

    def initialize_profile(self, adapter: Any) -> ModelProfile:
        """The model's profile into ``profile_`` (:func:`~nulltta.profiles.model_profile`)."""
        self.profile_ = model_profile(self.pipeline, adapter, loaded=self.pipeline_)
        return self.profile_

    def initialize_reward(self) -> Reward:
        """Resolve the reward into ``reward_fn_`` (the model's default reward for None)."""
        reward = self.reward
        if reward is None:
            profile = getattr(self, "profile_", None)
            reward = profile.reward if profile is not None else "pickscore"
        cache = getattr(self, "_reward_cache", None)
        if isinstance(reward, str) and cache is not None and cache[0] == reward:
            self.reward_fn_ = cache[1]  # a learned reward is loaded once, not at every fit
        else:
            self.reward_fn_ = get_reward(reward)
            self._reward_cache = (reward, self.reward_fn_)
        return self.reward_fn_

    def _prepare(self, prompts: Sequence[str]) -> tuple[Any, AlignmentConfig, int, int]:
        self._check_params()
        pipeline = self.initialize_pipeline()
        adapter = make_adapter(pipeline, scheduler=self.scheduler, eta=self.eta)
        profile = self.initialize_profile(adapter)
        config = self._config(profile)
        adapter.set_precision(config.autocast_dtype, config.vae_autocast_dtype)
        # config_ records the precision that runs, not "auto".
        config = replace(
            config,
            autocast_dtype=adapter.denoiser_autocast,
            vae_autocast_dtype=adapter.vae_autocast,
        )
        default_h, default_w = adapter.default_resolution()
        height = default_h if self.height is None else self.height
        width = default_w if self.width is None else self.width
        adapter.check_resolution(height, width)
        for prompt in dict.fromkeys(prompts):
            profile.validate_prompt(prompt)
        reward = self.initialize_reward().to(adapter.device)
        reward.eval()
        return adapter, config, height, width

    def _align(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: AlignmentConfig,
        adapter: Any,
        size: tuple[int, int],
        extra_callbacks: Sequence[Any] = (),
    ) -> list[AlignedImage]:
        """Run the method for every (prompt, seed) pair, ``batch_size`` at a time."""
        results: list[AlignedImage] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            module = self.module_class(adapter, self.reward_fn_, config, self.gradient_decoder)
            generators = [torch.Generator(adapter.device).manual_seed(int(s)) for s in seeds[chunk]]
            module.start_trajectory(
                prompts[chunk], *size, generators, negative_prompt=self.negative_prompt
            )
            callbacks = method_callbacks(
                config, extra_callbacks, profile_memory=self.profile_memory, progress=self.progress
            )
            run_denoising_loop(module, callbacks + list(self.callbacks or []))
            results += finish_batch(module)
            self.module_ = module
        return results

