"""Method settings, validated in one place before any expensive work."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = [
    "AUTOCAST_CHOICES",
    "AlignmentConfig",
    "COMPILE_MODES",
    "NULL_PARAMETERISATIONS",
    "GRADIENT_MODES",
    "INNER_STEP_ORDERS",
    "KL_MODES",
    "MODEL_DEPENDENT_SETTINGS",
    "config_from",
]

#: Settings whose None means "the model's value" (:func:`config_from`).
MODEL_DEPENDENT_SETTINGS = (
    "guidance_scale", "kl_weight", "anneal_kl", "learning_rate", "inner_steps_order",
)  # fmt: skip

KL_MODES = ("paper", "exact")
GRADIENT_MODES = ("auto", "backprop", "zeroth_order")
AUTOCAST_CHOICES = ("auto", None, "bfloat16", "float16")
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune")
NULL_PARAMETERISATIONS = ("embedding", "text_manifold")
INNER_STEP_ORDERS = ("ramp_up", "ramp_down")


@dataclass
class AlignmentConfig:
    """Every constant of the method; defaults follow the release (``docs/concepts/method.md``).

    Attributes
    ----------
    guidance_scale : float
        CFG scale ``s``; must be > 1 or phi' has no effect.
    num_inference_steps : int
        Sampling steps T (100 as released).
    n_min, n_max : int
        Inner gradient steps ramp from ``n_min`` to ``n_max`` (5 and 25).
    schedule_rate : float
        ``c`` of the inner-step ramp and the lambda2 annealing (0.008).
    inner_steps_order : {"ramp_up", "ramp_down"}
        "ramp_up" (as released): fewest inner steps at the noisiest sampling
        steps; "ramp_down": the same counts in reverse order, most at the
        noisiest steps (not in the paper). lambda2 annealing keeps its order.
    learning_rate : float
        Adam learning rate on phi' (1e-2), Adam re-created every step.
    reward_weight : float or None
        ``lambda1``; None gives 100 for gradient updates and 50 for zero-order.
    kl_weight : float
        ``lambda2`` (0.002).
    kl_mode : {"paper", "exact"}
        "paper": ``s^2 lam_t ||eps_u - eps_u0||^2`` as released; "exact": the
        closed form ``b_t^2 (1 - s)^2 ||.||^2 / (2 sigma_t^2)``.
    sigma_phi_sq : float
        ``sigma_phi^2`` of the embedding KL (0.01).
    anneal_kl : bool
        Multiply lambda2 by ``tau_i = max(2 - (1 + c)^i, 0)``, which reaches 0
        near 87% of the steps, as released (True); False keeps it constant.
    num_candidates : int
        K of the greedy selection (3); 1 is plain ancestral sampling.
    select_initial_noise : bool
        Also pick the best of K initial noises at t = T (as released).
    null_parameterisation : {"embedding", "text_manifold"}
        What is optimised: phi' itself ("embedding", the paper's), or the empty
        prompt's input token embeddings e' with ``phi' = text_encoder(e')``
        ("text_manifold", beyond the paper; :mod:`nulltta.parameterisation`).
    gradient : {"auto", "backprop", "zeroth_order"}
        "auto" uses zero-order estimates when the reward is not differentiable.
    zo_samples, zo_smoothing : int, float
        K and mu of the zero-order estimator (4 and 0.02).
    gradient_checkpointing : bool
        Recompute UNet and VAE block activations in the inner loop's backward
        pass instead of storing them (less memory, more time). Off.
    autocast_dtype : {"auto", None, "bfloat16", "float16"}
        Precision of the denoiser (UNet or transformer) in the inner loop, by
        ``torch.autocast``; the reward and the objective stay float32. "auto"
        (default): the model family's reduced precision on CUDA, as the
        release runs (fp16 UNet for SD1.x/2.x and SDXL, bf16 for SD3), and
        float32 elsewhere; None: float32 everywhere.
    vae_autocast_dtype : {"auto", None, "bfloat16", "float16"}
        The same for the VAE decoder of the inner loop. "auto": what the family
        needs on CUDA (float32 for SD1.x/2.x and SDXL, whose VAEs overflow in
        fp16, bf16 for SD3), float32 elsewhere.
    compile_mode : {None, "default", "reduce-overhead", "max-autotune"}
        ``torch.compile`` the denoiser and the VAE decoder with this mode
        (``"reduce-overhead"`` captures CUDA graphs). The timestep goes in as a
        tensor and shapes are static, so one compilation serves every
        timestep. None (off) by default: compiling takes minutes and pays off
        only over many images (``docs/how-to/benchmark.md``).
    decode_scale : float
        The inner loop decodes ``x0_hat`` resized by this factor (0.5: a
        half-resolution image for the reward gradient, about a quarter of the
        VAE cost). 1.0 (full resolution) by default; the final image, greedy
        selection and the reported reward always use full resolution.
    early_stop_patience : int or None
        Stop a timestep's inner loop once the objective has not improved by
        more than ``early_stop_tolerance`` for this many inner steps. None (off).
    early_stop_tolerance : float
        See ``early_stop_patience`` (0.0).
    optimize_every : int
        Optimise phi' only at every k-th timestep (phi' carries over in
        between); 1 (every step, as released) by default.

    """

    guidance_scale: float = 7.5
    num_inference_steps: int = 100
    n_min: int = 5
    n_max: int = 25
    schedule_rate: float = 0.008
    inner_steps_order: str = "ramp_up"
    learning_rate: float = 1e-2
    reward_weight: float | None = None
    kl_weight: float = 0.002
    kl_mode: str = "paper"
    sigma_phi_sq: float = 0.01
    anneal_kl: bool = True
    num_candidates: int = 3
    select_initial_noise: bool = True
    null_parameterisation: str = "embedding"
    gradient: str = "auto"
    zo_samples: int = 4
    zo_smoothing: float = 0.02
    gradient_checkpointing: bool = False
    autocast_dtype: str | None = "auto"
    vae_autocast_dtype: str | None = "auto"
    compile_mode: str | None = None
    decode_scale: float = 1.0
    early_stop_patience: int | None = None
    early_stop_tolerance: float = 0.0
    optimize_every: int = 1

    def validate(self) -> AlignmentConfig:
        """Raise ``ValueError`` with the fix for the first invalid setting."""
        if self.guidance_scale <= 1:
            raise ValueError(
                f"guidance_scale={self.guidance_scale}: with s <= 1 the null-text embedding has "
                "no effect on the image (eps~ = (1 - s) eps_u + s eps_c). Use s > 1, e.g. 7.5."
            )
        _check_int("num_inference_steps", self.num_inference_steps, minimum=1)
        _check_int("n_min", self.n_min, minimum=0)
        _check_int("n_max", self.n_max, minimum=0)
        if self.n_min > self.n_max:
            raise ValueError(
                f"n_min={self.n_min} > n_max={self.n_max}: the inner-step ramp goes from n_min "
                "up to n_max; swap them or raise n_max."
            )
        if self.inner_steps_order not in INNER_STEP_ORDERS:
            raise ValueError(
                f"inner_steps_order={self.inner_steps_order!r}; choose one of {INNER_STEP_ORDERS} "
                "('ramp_up' is the release's)"
            )
        _check_int("num_candidates", self.num_candidates, minimum=1)
        _check_int("zo_samples", self.zo_samples, minimum=1)
        for name in ("learning_rate", "zo_smoothing", "sigma_phi_sq"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("kl_weight", "schedule_rate"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        if self.reward_weight is not None and not self.reward_weight > 0:
            raise ValueError(
                f"reward_weight={self.reward_weight} must be > 0 (or None for the default)"
            )
        if self.kl_mode not in KL_MODES:
            raise ValueError(f"kl_mode={self.kl_mode!r}; choose one of {KL_MODES}")
        if self.null_parameterisation not in NULL_PARAMETERISATIONS:
            raise ValueError(
                f"null_parameterisation={self.null_parameterisation!r}; choose one of "
                f"{NULL_PARAMETERISATIONS}"
            )
        if self.gradient not in GRADIENT_MODES:
            raise ValueError(f"gradient={self.gradient!r}; choose one of {GRADIENT_MODES}")
        self._validate_speed_options()
        return self

    def _validate_speed_options(self) -> None:
        for name in ("autocast_dtype", "vae_autocast_dtype"):
            if getattr(self, name) not in AUTOCAST_CHOICES:
                raise ValueError(
                    f"{name}={getattr(self, name)!r}; choose one of {AUTOCAST_CHOICES}"
                )
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode={self.compile_mode!r}; choose one of {COMPILE_MODES}")
        if not 0 < self.decode_scale <= 1:
            raise ValueError(
                f"decode_scale={self.decode_scale} must be in (0, 1]: it shrinks the inner "
                "loop's decode, e.g. 0.5 for half resolution"
            )
        if self.early_stop_patience is not None:
            _check_int("early_stop_patience", self.early_stop_patience, minimum=1)
        if not self.early_stop_tolerance >= 0:
            raise ValueError(f"early_stop_tolerance={self.early_stop_tolerance} must be >= 0")
        _check_int("optimize_every", self.optimize_every, minimum=1)

    def plain_sampling(self) -> AlignmentConfig:
        """These settings with no phi' optimisation and one candidate (plain CFG sampling).

        With zero inner steps and ``K = 1`` a run is the stock ancestral sampler;
        used for baselines and for replaying a fitted phi' trajectory.
        """
        return replace(
            self,
            n_min=0,
            n_max=0,
            num_candidates=1,
            select_initial_noise=False,
            null_parameterisation="embedding",  # phi' is set, not optimised
        )

    def resolved_reward_weight(self, zeroth_order: bool) -> float:
        """``lambda1``: the given weight, or 100 (gradient) / 50 (zero-order) as released."""
        if self.reward_weight is not None:
            return self.reward_weight
        return 50.0 if zeroth_order else 100.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of the settings."""
        return asdict(self)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")


def config_from(
    settings: dict[str, Any], model_defaults: dict[str, Any] | None = None
) -> AlignmentConfig:
    """Validated settings, with each model-dependent one left None taken from the model.

    Parameters
    ----------
    settings : dict
        A value for every field of :class:`AlignmentConfig`; the fields in
        :data:`MODEL_DEPENDENT_SETTINGS` may be None.
    model_defaults : dict, optional
        The model's values of those fields (its
        :attr:`~nulltta.profiles.ModelProfile.defaults`); missing ones fall back
        to :class:`AlignmentConfig`'s defaults, which are the release's.
    """
    release = AlignmentConfig()
    resolved = dict(settings)
    for name in MODEL_DEPENDENT_SETTINGS:
        if resolved.get(name) is None:
            resolved[name] = (model_defaults or {}).get(name, getattr(release, name))
    return AlignmentConfig(**resolved).validate()
