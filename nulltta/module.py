"""``NullTextModule``: the LightningModule whose only parameter is phi'.

One ``training_step`` is one denoising step of the method
(``docs/concepts/method.md``), numbered as there, for ``B`` trajectories at
once: different prompts and/or seeds, one UNet, VAE and reward call per inner
step for all of them. phi' is one ``(B, ...)`` parameter; the objective is a
sum over trajectories whose gradient is block-diagonal, each row has its own
Adam state (:class:`~nulltta.optim.TrajectoryAdam`) and its own generator, so
a batch of ``B`` equals ``B`` single runs.

The pipeline's networks and the reward stay outside the module (frozen,
never registered as submodules), so ``named_parameters()`` yields exactly
one tensor. The trajectory state (current latents, cached conditional
prediction, records) lives in :attr:`NullTextModule.trajectory`, so the
module can be driven by our own loop (``nulltta.loop``) or by a Lightning
``Trainer`` fed the step indices ``0 .. T-1``.

Step 3, the inner ascent on phi', is
:class:`~nulltta.inner_optimisation.InnerOptimisation`, a mixin of the
module. Nothing in a denoising step waits for the device: finiteness
checks and skips are masks, and what a step records stays on the device until
:meth:`~nulltta.trajectory.Trajectory.histories` reads it at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor, nn

from .adapters import Embeddings, PipelineAdapter, cat_embeddings, repeat_embeddings
from .config import AlignmentConfig
from .equations import (
    StepCoefficients,
    cfg_combine,
    embedding_kl,
    exact_local_kl,
    inner_steps_schedule,
    paper_local_kl,
    transition_mean,
    tweedie_x0,
)
from .inner_optimisation import InnerOptimisation
from .optim import TrajectoryAdam
from .parameterisation import FreeNull, make_parameterisation
from .rewards import Reward
from .speedups import downscale_latents, strided_schedule
from .trajectory import StepRecord, Trajectory

__all__ = ["NullTextModule"]


def _tile(x: Tensor, repeats: int) -> Tensor:
    """``repeats`` copies of ``x`` along the batch (k-major); ``x`` itself when 1."""
    return x if repeats == 1 else x.repeat(repeats, *[1] * (x.ndim - 1))


class _Frozen:
    """Holds the networks outside ``nn.Module`` registration."""

    def __init__(self, adapter: PipelineAdapter, reward: Reward) -> None:
        self.adapter = adapter
        self.reward = reward


class NullTextModule(InnerOptimisation, LightningModule):
    """phi' and one denoising step with its inner optimisation, for B trajectories.

    Parameters
    ----------
    adapter : PipelineAdapter
        The model family's adapter around the user's pipeline.
    reward : Reward
        The target reward.
    config : AlignmentConfig
        Method settings (validated).
    gradient_decoder : nn.Module, optional
        A light decoder (diffusers ``AutoencoderTiny``) for the reward's
        gradient in the inner loop; candidate scoring and final images keep
        the full VAE.

    """

    def __init__(
        self,
        adapter: PipelineAdapter,
        reward: Reward,
        config: AlignmentConfig,
        gradient_decoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.config = config
        adapter.set_precision(config.autocast_dtype, config.vae_autocast_dtype)
        adapter.compile(config.compile_mode)
        adapter.gradient_decoder = gradient_decoder
        self._frozen = _Frozen(adapter, reward)
        # phi' itself, or e' with phi' = text_encoder(e') (config.null_parameterisation).
        self.null_embedding = nn.Parameter(torch.zeros(0))
        self.parameterisation: FreeNull = make_parameterisation(
            config.null_parameterisation, adapter, None
        )
        self.kl_scale = 1.0  # tau_i; set by the annealing callback
        self.trajectory: Trajectory | None = None
        if config.gradient == "auto":
            self.zeroth_order = not reward.is_differentiable
        else:
            self.zeroth_order = config.gradient == "zeroth_order"
        self.reward_weight = config.resolved_reward_weight(self.zeroth_order)

    @property
    def adapter(self) -> PipelineAdapter:
        """The model family's adapter (not a submodule)."""
        return self._frozen.adapter

    @property
    def reward(self) -> Reward:
        """The target reward (not a submodule)."""
        return self._frozen.reward

    # --- set-up --------------------------------------------------------------
    def start_trajectory(
        self,
        prompts: str | Sequence[str],
        height: int,
        width: int,
        generators: torch.Generator | Sequence[torch.Generator | None] | None,
        negative_prompt: str | None = None,
        latents: Tensor | None = None,
    ) -> Trajectory:
        """Encode the prompts, set the timesteps, draw each x_T and reset phi' to phi.

        Parameters
        ----------
        prompts : str or sequence of str
            One prompt per trajectory (a string is one trajectory).
        height, width : int
            Image size.
        generators : torch.Generator or sequence of them
            One generator per trajectory: it draws that trajectory's x_T and
            every later noise, exactly as a run of that trajectory alone would.
        negative_prompt : str, optional
            Text whose embedding is phi (and phi''s start); None means "".
        latents : Tensor, optional
            ``(B, ...)`` initial latents instead of drawing them.

        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not isinstance(generators, (list, tuple)):
            generators = [generators]
        if len(generators) != len(prompts):
            raise ValueError(
                f"got {len(generators)} generator(s) for {len(prompts)} prompts; pass one "
                "generator per trajectory (each trajectory draws its own noise)"
            )
        adapter, config = self.adapter, self.config
        encoded = [adapter.encode_prompt(prompt, negative_prompt) for prompt in prompts]
        cond = cat_embeddings([c for c, _ in encoded])
        null = repeat_embeddings(encoded[0][1], len(prompts))  # phi is the same for every row
        timesteps = adapter.set_timesteps(config.num_inference_steps)
        if latents is None:
            latents = torch.cat(
                [adapter.prepare_latents(1, height, width, generator) for generator in generators]
            )
        null_packed = adapter.pack_null(null).detach()
        self.parameterisation = make_parameterisation(
            config.null_parameterisation, adapter, negative_prompt
        )
        self.null_embedding.data = self.parameterisation.initial(null_packed).clone()
        self.trajectory = Trajectory(
            prompts=prompts,
            cond=cond,
            null=null,
            null_packed=null_packed,
            timesteps=timesteps,
            coefficients=[adapter.step_coefficients(t) for t in timesteps],
            inner_steps=strided_schedule(
                inner_steps_schedule(
                    len(timesteps),
                    config.n_min,
                    config.n_max,
                    config.schedule_rate,
                    config.inner_steps_order,
                ),
                config.optimize_every,
            ),
            latents=latents.float(),
            generators=list(generators),
        )
        return self.trajectory

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on phi' alone, one step count per trajectory (its state is reset every timestep)."""
        return TrajectoryAdam([self.null_embedding], lr=self.config.learning_rate)

    # --- the networks, as the method uses them ---------------------------------
    def phi_prime(self, parameter: Tensor | None = None) -> Tensor:
        """Packed phi' for the parameter (or ``parameter``): itself, or ``text_encoder(e')``."""
        return self.parameterisation.phi(self.null_embedding if parameter is None else parameter)

    def null_embeddings(self, packed: Tensor | None = None) -> Embeddings:
        """The embeddings the denoiser takes for phi' (or ``packed``, ``k * B`` rows)."""
        packed = self.phi_prime() if packed is None else packed
        repeats = packed.shape[0] // self.trajectory.batch_size
        null = self.trajectory.null
        if repeats != 1:
            null = repeat_embeddings(null, repeats)
        return self.adapter.unpack_null(packed, null)

    def predict_cfg(self, latents: Tensor, step_index: int) -> tuple[Tensor, Tensor]:
        """CFG noise with phi' and the conditional noise, in one batched UNet pass.

        ``latents`` may hold ``k * B`` rows (candidates, k-major).
        """
        traj = self.trajectory
        repeats = latents.shape[0] // traj.batch_size
        null = self.null_embeddings(_tile(self.phi_prime().detach(), repeats))
        cond = traj.cond if repeats == 1 else repeat_embeddings(traj.cond, repeats)
        both = self.adapter.predict_noise(
            torch.cat([latents, latents]), traj.timesteps[step_index], cat_embeddings([null, cond])
        )
        eps_uncond, eps_cond = both.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, self.config.guidance_scale), eps_cond

    def score_images(self, images: Tensor) -> Tensor:
        """Target reward of decoded images (no graph), one score per row."""
        repeats = images.shape[0] // self.trajectory.batch_size
        with torch.no_grad():
            return self.reward.score_trusted(images, self.trajectory.prompts * repeats)

    def objective(
        self,
        null_packed: Tensor,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``J = lambda1 R(decode(x0_hat)) - lambda2 tau_i (KL_t + KL_emb)``, per row.

        ``null_packed`` may hold ``m * B`` rows (zero-order perturbations); the
        other tensors are tiled to match. ``eps_ref`` is None when the KL
        weight is zero at this step. The UNet and VAE run at the adapter's
        precision; the reward and the objective stay float32.
        """
        traj, config, adapter = self.trajectory, self.config, self.adapter
        repeats = null_packed.shape[0] // traj.batch_size
        latents, eps_cond = _tile(latents, repeats), _tile(eps_cond, repeats)
        eps_uncond = adapter.predict_noise(
            latents, coefficients.timestep, self.null_embeddings(null_packed)
        )
        eps = cfg_combine(eps_uncond, eps_cond, config.guidance_scale)
        x0 = tweedie_x0(latents, eps, coefficients.signal, coefficients.noise)
        images = adapter.decode_for_gradient(downscale_latents(x0, config.decode_scale))
        reward = self.reward.score_trusted(images, traj.prompts * repeats)
        kl_weight = config.kl_weight * self.kl_scale
        if eps_ref is None or kl_weight == 0:
            kl_local = kl_embedding = torch.zeros_like(reward)
        else:
            local_kl = exact_local_kl if config.kl_mode == "exact" else paper_local_kl
            if local_kl is exact_local_kl and coefficients.std == 0:
                # A deterministic step (DDPM's last, a flow model's last) has no Gaussian
                # transition to compare: the exact local KL is dropped there.
                kl_local = torch.zeros_like(reward)
            else:
                kl_local = local_kl(
                    eps_uncond, _tile(eps_ref, repeats), config.guidance_scale, coefficients
                )
            kl_embedding = embedding_kl(
                null_packed, _tile(traj.null_packed, repeats), config.sigma_phi_sq
            )
        value = self.reward_weight * reward - kl_weight * (kl_local + kl_embedding)
        return value, {"reward": reward, "kl_local": kl_local, "kl_embedding": kl_embedding}

    # --- one denoising step -------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int = 0) -> dict[str, Any]:
        """Steps 1-4 of the method at step index ``batch``; returns the transition."""
        step_index = int(batch)
        traj, config = self.trajectory, self.config
        timestep = traj.timesteps[step_index]
        coefficients = traj.coefficients[step_index]
        latents = traj.latents
        num_inner = traj.inner_steps[step_index]
        adapter = self.adapter
        kl_weight = config.kl_weight * self.kl_scale

        # 1. Conditional branch: once, without grad (the greedy winner's, if cached).
        eps_cond = traj.cached_cond_eps
        traj.cached_cond_eps = None
        if eps_cond is None:
            with torch.no_grad():
                eps_cond = adapter.predict_noise(latents, timestep, traj.cond)

        # 2. Reference unconditional branch eps(x_t, t, phi): once, without grad,
        #    and only when the KL term is active at this step.
        eps_ref = None
        if num_inner > 0 and kl_weight > 0:
            with torch.no_grad():
                eps_ref = adapter.predict_noise(latents, timestep, traj.null)

        # 3. Inner loop: num_inner ascent steps on phi' (warm start, fresh Adam).
        inner = self._optimise(latents, eps_cond, eps_ref, coefficients, num_inner)

        # 4. Transition mean with the final phi'.
        with torch.no_grad():
            eps_uncond = adapter.predict_noise(latents, timestep, self.null_embeddings())
            eps = cfg_combine(eps_uncond, eps_cond, config.guidance_scale)
            mean = transition_mean(latents, eps, coefficients)
            phi = self.phi_prime().detach().clone()
        traj.phi.append(phi)
        record = StepRecord(
            shared={
                "step": step_index,
                "timestep": int(timestep),
                "kl_scale": float(self.kl_scale),
                "lambda2": float(kl_weight),
            },
            per_trajectory={"phi_distance": (phi - traj.null_packed).flatten(1).norm(dim=1)},
            inner=inner,
        )
        return {"mean": mean, "std": coefficients.std, "record": record}

    # --- advancing the trajectory -----------------------------------------------
    def on_train_batch_end(self, outputs: dict[str, Any], batch: Any, batch_idx: int) -> None:
        """Move to x_{t-1}: the greedy winners if a callback chose them, else ancestral."""
        traj = self.trajectory
        if outputs.get("next_latents") is not None:
            traj.latents = outputs["next_latents"]
            traj.cached_cond_eps = outputs.get("next_cond_eps")
        else:
            mean = outputs["mean"]
            noise = traj.randn((1, *mean.shape[1:]), mean.device, mean.dtype).flatten(0, 1)
            traj.latents = mean + outputs["std"] * noise
        traj.records.append(outputs["record"])
