"""``NullTextAligner``: the scikit-learn-style estimator users meet first.

>>> aligner = NullTextAligner(pipe, reward="pickscore").fit("a cat on a sofa")
>>> aligner.image_.save("cat.png")
>>> more = aligner.generate(n_images=4, seed=1)
>>> several = NullTextAligner(pipe, batch_size=4).fit(["a cat", "a dog"], seeds=[0, 1])
>>> several.images_, several.rewards_, several.histories_
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .aligned import check_prompts_and_seeds
from .callbacks import FixedNullTrajectory
from .errors import NotFittedError, NullTTAError
from .estimator_setup import PLURAL_ATTRIBUTES, SINGLE_ATTRIBUTES, EstimatorSetup
from .images import format_images, to_pil, to_tensor
from .persistence import load_fitted, save_fitted

__all__ = ["NotFittedError", "NullTTAError", "NullTextAligner", "to_pil", "to_tensor"]

class NullTextAligner(EstimatorSetup):
    """Align a text-to-image diffusion model to a reward by optimising phi' only.

    ``__init__`` stores its arguments; ``fit(prompt)`` validates them, loads
    what it needs and runs Null-TTA (``docs/concepts/method.md``). Defaults
    follow the authors' release, except the settings left None, which take
    the model's values (its :class:`~nulltta.profiles.ModelProfile`).

    ``fit(prompt)`` aligns one image; ``fit(prompts, seeds=...)`` aligns one
    image per (prompt, seed) pair, ``batch_size`` trajectories at a time
    (one UNet, VAE and reward call per inner step for all of them). A batch
    equals the same trajectories run one by one: each keeps its own phi',
    Adam state, KL terms, candidates, generator and history.

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
        CFG scale s > 1; None uses the model's default (7.5 SD1.x/2.x, 5.0 SDXL
        and the embedded model, 7.0 SD3).
    num_inference_steps : int, default=100
    height, width : int or None
        Image size; None uses the model's native size.
    negative_prompt : str or None
        Text whose embedding is phi (and phi''s starting point); None means "".
    scheduler : {"ddim", "ddpm", "pipeline"} or scheduler, default="ddim"
    eta : float, default=1.0
        DDIM eta; must be > 0 (the method needs a stochastic transition).
    n_min, n_max, schedule_rate, reward_weight, kl_mode, sigma_phi_sq,
    num_candidates, select_initial_noise, null_parameterisation, gradient, zo_samples,
    zo_smoothing
        Method settings, see :class:`~nulltta.config.AlignmentConfig`.
    learning_rate : float or None, default=None
        Adam's step size on phi'; None uses the model's value (the release's 1e-2
        unless the model's profile says otherwise).
    kl_weight : float or None, default=None
        lambda2; None uses the model's value (the release's 0.002 unless the
        model's profile says otherwise, ``docs/concepts/regularisation.md``).
    anneal_kl : bool or None, default=None
        Anneal lambda2 with ``tau_i = max(2 - (1 + c)^i, 0)`` (to zero near 87%
        of the steps); None uses the model's setting (True as released).
    inner_steps_order : {"ramp_up", "ramp_down"} or None, default=None
        "ramp_up" (as released): the fewest inner steps at the noisiest steps;
        "ramp_down": the same counts reversed. None uses the model's setting
        ("ramp_up" unless the model's profile says otherwise).
    autocast_dtype, vae_autocast_dtype : {"auto", None, "bfloat16", "float16"}
        Precision of the denoiser and of the VAE decoder. "auto" (default): the
        family's reduced precision on CUDA, as the release runs it (fp16 UNet,
        fp32 VAE for SD), float32 on the CPU; the reward and the objective are
        always float32, and TF32 is on during a CUDA run.
    compile_mode : {None, "default", "reduce-overhead", "max-autotune"}
        ``torch.compile`` the denoiser and the VAE decoder (off by default).
    gradient_decoder : diffusers AutoencoderTiny, optional
        A light TAESD-style decoder for the reward's gradient in the inner loop
        (candidates and final images keep the full VAE). It changes results.
    gradient_checkpointing, decode_scale, early_stop_patience, early_stop_tolerance,
    optimize_every
        Speed and memory options, all off by default; see
        :class:`~nulltta.config.AlignmentConfig` and :mod:`nulltta.speedups`.
    seed : int, default=0
        Seed of a single-prompt fit's generator (noise, candidates, zero-order
        directions); ``fit(prompts, seeds=...)`` seeds each trajectory itself.
    batch_size : int, default=1
        Trajectories aligned together by ``fit(prompts)``, ``generate`` and
        ``sample_baseline``.
    callbacks : list of lightning.Callback, optional
        Extra callbacks, run after the built-in ones.
    progress : bool, default=False
        Show a progress bar.
    profile_memory : bool, default=False
        Record each step's peak memory in the history (opt-in: on CUDA it
        waits for the device at every step).
    device, torch_dtype : optional
        Used only when nulltta loads the pipeline itself.

    Attributes
    ----------
    prompt_ : str
        ``fit(prompt)`` only, like the next five.
    phi_ : Tensor
        phi' at every step, ``(T, 1, ...)`` (``(T, 1, 77, 768)`` for SD1.5).
    image_ : PIL.Image.Image
    latents_ : Tensor
        The final latent, ``(1, ...)``.
    reward_ : float
        Target reward of ``image_``.
    history_ : History
        One row per denoising step (see :mod:`nulltta.history`).
    prompts_, seeds_ : list
        ``fit(prompts)`` only, like the next five: one entry per pair.
    phis_ : list of Tensor
        Each trajectory's ``(T, 1, ...)`` phi'.
    images_ : list of PIL.Image.Image
    rewards_ : list of float
    histories_ : list of History
    all_latents_ : Tensor
        ``(N, ...)`` final latents.
    config_ : AlignmentConfig
        The settings that ran, model defaults resolved.
    profile_ : ModelProfile
        The model's profile (defaults, rewards, prompt check).
    module_ : NullTextModule
        The module of the last batch.
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
        inner_steps_order: str | None = None,
        learning_rate: float | None = None,
        reward_weight: float | None = None,
        kl_weight: float | None = None,
        kl_mode: str = "paper",
        sigma_phi_sq: float = 0.01,
        anneal_kl: bool | None = None,
        num_candidates: int = 3,
        select_initial_noise: bool = True,
        null_parameterisation: str = "embedding",
        gradient: str = "auto",
        zo_samples: int = 4,
        zo_smoothing: float = 0.02,
        gradient_checkpointing: bool = False,
        autocast_dtype: str | None = "auto",
        vae_autocast_dtype: str | None = "auto",
        compile_mode: str | None = None,
        gradient_decoder: Any = None,
        decode_scale: float = 1.0,
        early_stop_patience: int | None = None,
        early_stop_tolerance: float = 0.0,
        optimize_every: int = 1,
        seed: int = 0,
        batch_size: int = 1,
        callbacks: Sequence[Any] | None = None,
        progress: bool = False,
        profile_memory: bool = False,
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
        self.inner_steps_order = inner_steps_order
        self.learning_rate = learning_rate
        self.reward_weight = reward_weight
        self.kl_weight = kl_weight
        self.kl_mode = kl_mode
        self.sigma_phi_sq = sigma_phi_sq
        self.anneal_kl = anneal_kl
        self.num_candidates = num_candidates
        self.select_initial_noise = select_initial_noise
        self.null_parameterisation = null_parameterisation
        self.gradient = gradient
        self.zo_samples = zo_samples
        self.zo_smoothing = zo_smoothing
        self.gradient_checkpointing = gradient_checkpointing
        self.autocast_dtype = autocast_dtype
        self.vae_autocast_dtype = vae_autocast_dtype
        self.compile_mode = compile_mode
        self.gradient_decoder = gradient_decoder
        self.decode_scale = decode_scale
        self.early_stop_patience = early_stop_patience
        self.early_stop_tolerance = early_stop_tolerance
        self.optimize_every = optimize_every
        self.seed = seed
        self.batch_size = batch_size
        self.callbacks = callbacks
        self.progress = progress
        self.profile_memory = profile_memory
        self.device = device
        self.torch_dtype = torch_dtype

    # --- public API ---------------------------------------------------------------
    def fit(
        self, prompts: str | Sequence[str], y: None = None, seeds: Sequence[int] | None = None
    ) -> NullTextAligner:
        """Run Null-TTA; starts from scratch every call.

        Parameters
        ----------
        prompts : str or sequence of str
            One prompt (sets ``prompt_``, ``image_``, ``reward_``, ``history_``,
            ``phi_``, ``latents_``, seeded by ``seed``), or several, one image
            per entry (sets ``prompts_``, ``seeds_``, ``images_``, ``rewards_``,
            ``histories_``, ``phis_``, ``all_latents_``).
        y : None
            Ignored (scikit-learn convention).
        seeds : sequence of int, optional
            With several prompts: one seed per prompt; default ``seed`` for all.

        Returns
        -------
        NullTextAligner
            ``self``, with the fitted attributes set.

        """
        single = isinstance(prompts, str)
        prompt_list, seed_list = check_prompts_and_seeds(prompts, seeds, self.seed)
        adapter, config, height, width = self._prepare(prompt_list)
        results = self._align(prompt_list, seed_list, config, adapter, (height, width))
        for name in (*SINGLE_ATTRIBUTES, *PLURAL_ATTRIBUTES):
            self.__dict__.pop(name, None)  # a refit starts from scratch
        self.config_ = config
        self.resolution_ = (height, width)
        self.timesteps_ = list(self.module_.trajectory.timesteps)
        if single:
            result = results[0]
            self.prompt_ = result.prompt
            self.phi_ = result.phi
            self.latents_ = result.latents.unsqueeze(0)
            self.image_ = result.image
            self.reward_ = result.reward
            self.history_ = result.history
        else:
            self.prompts_ = [r.prompt for r in results]
            self.seeds_ = [int(s) for s in seed_list]
            self.phis_ = [r.phi for r in results]
            self.all_latents_ = torch.stack([r.latents for r in results])
            self.images_ = [r.image for r in results]
            self.rewards_ = [r.reward for r in results]
            self.histories_ = [r.history for r in results]
        return self

    def generate(
        self,
        n_images: int = 1,
        seed: int | None = None,
        reoptimize: bool = True,
        output_type: str = "pil",
    ) -> list[Image.Image] | torch.Tensor:
        """More images of the fitted prompt, one per seed ``seed, seed + 1, ...``.

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
        if not hasattr(self, "prompt_"):
            raise ValueError(
                "generate() continues a single-prompt fit; this aligner was fitted on several "
                "prompts. Fit one prompt (fit(prompt)), or fit the prompts again with new seeds."
            )
        if n_images < 1:
            raise ValueError(f"n_images={n_images} must be >= 1")
        adapter, config, height, width = self._prepare([self.prompt_])
        extra: list[Any] = []
        if not reoptimize:
            config = config.plain_sampling()
            extra = [FixedNullTrajectory(self.phi_)]
        first = self.seed + 1 if seed is None else seed
        seeds = [first + k for k in range(n_images)]
        results = self._align(
            [self.prompt_] * n_images, seeds, config, adapter, (height, width), extra
        )
        return format_images(torch.cat([r.pixels for r in results]), output_type)

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
            raise ValueError("pass a prompt, or fit the aligner on one prompt first")
        adapter, config, height, width = self._prepare([prompt])
        first = self.seed if seed is None else seed
        seeds = [first + k for k in range(n_images)]
        results = self._align(
            [prompt] * n_images, seeds, config.plain_sampling(), adapter, (height, width)
        )
        return format_images(torch.cat([r.pixels for r in results]), output_type)

    def score(self, images: Any, prompt: str | None = None) -> float:
        """Mean target reward of ``images`` (PIL, list of PIL, or tensor in [0, 1])."""
        self._check_is_fitted()
        if not hasattr(self, "reward_fn_"):
            self.initialize_reward()
        tensor = to_tensor(images).to(self.reward_fn_.device)
        with torch.no_grad():
            scores = self.reward_fn_(tensor, prompt or getattr(self, "prompt_", None))
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
