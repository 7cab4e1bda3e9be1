"""``NullTextModule``: the LightningModule whose only parameter is phi'.

One ``training_step`` is one denoising step of ``METHOD.md``, numbered as
there. The pipeline's networks and the reward stay outside the module
(frozen, never registered as submodules), so ``named_parameters()`` yields
exactly one tensor. The trajectory state (current latent, cached conditional
prediction, history) lives in :attr:`NullTextModule.trajectory`, so the
module can be driven by our own loop (``nulltta.loop``) or by a Lightning
``Trainer`` fed the step indices ``0 .. T-1``.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers.utils.torch_utils import randn_tensor
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
    zeroth_order_gradient,
)
from .rewards import Reward
from .speedups import Plateau, autocast, downscale_latents, gradient_checkpointing, strided_schedule
from .trajectory import Trajectory, inner_step_row, reset_optimizer_state

__all__ = ["NullTextModule"]


class _Frozen:
    """Holds the networks outside ``nn.Module`` registration."""

    def __init__(self, adapter: PipelineAdapter, reward: Reward) -> None:
        self.adapter = adapter
        self.reward = reward


class NullTextModule(LightningModule):
    """phi' and one denoising step with its inner optimisation.

    Parameters
    ----------
    adapter : PipelineAdapter
        The model family's adapter around the user's pipeline.
    reward : Reward
        The target reward.
    config : AlignmentConfig
        Method settings (validated).

    """

    def __init__(self, adapter: PipelineAdapter, reward: Reward, config: AlignmentConfig) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.config = config
        self._frozen = _Frozen(adapter, reward)
        self.null_embedding = nn.Parameter(torch.zeros(0))
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
        prompt: str,
        height: int,
        width: int,
        generator: torch.Generator | None,
        batch_size: int = 1,
        negative_prompt: str | None = None,
        latents: Tensor | None = None,
    ) -> Trajectory:
        """Encode the prompt, set the timesteps, draw x_T and reset phi' to phi."""
        adapter, config = self.adapter, self.config
        cond, null = adapter.encode_prompt(prompt, negative_prompt)
        cond, null = repeat_embeddings(cond, batch_size), repeat_embeddings(null, batch_size)
        timesteps = adapter.set_timesteps(config.num_inference_steps)
        if latents is None:
            latents = adapter.prepare_latents(batch_size, height, width, generator)
        null_packed = adapter.pack_null(null).detach()
        self.null_embedding.data = null_packed.clone()
        self.trajectory = Trajectory(
            prompts=[prompt] * batch_size,
            cond=cond,
            null=null,
            null_packed=null_packed,
            timesteps=timesteps,
            coefficients=[adapter.step_coefficients(t) for t in timesteps],
            inner_steps=strided_schedule(
                inner_steps_schedule(
                    len(timesteps), config.n_min, config.n_max, config.schedule_rate
                ),
                config.optimize_every,
            ),
            latents=latents.float(),
            generator=generator,
        )
        return self.trajectory

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """Adam on phi' alone (its state is reset at every timestep)."""
        return torch.optim.Adam([self.null_embedding], lr=self.config.learning_rate)

    # --- the networks, as the method uses them ---------------------------------
    def null_embeddings(self, packed: Tensor | None = None) -> Embeddings:
        """Phi' (or ``packed``) as the embeddings the denoiser takes."""
        packed = self.null_embedding if packed is None else packed
        repeats = packed.shape[0] // self.trajectory.batch_size
        return self.adapter.unpack_null(packed, repeat_embeddings(self.trajectory.null, repeats))

    def predict_cfg(self, latents: Tensor, step_index: int) -> tuple[Tensor, Tensor]:
        """CFG noise with phi' and the conditional noise, in one batched UNet pass.

        ``latents`` may hold ``k * B`` rows (candidates, k-major).
        """
        traj = self.trajectory
        repeats = latents.shape[0] // traj.batch_size
        null = self.null_embeddings(
            self.null_embedding.detach().repeat(repeats, *[1] * (self.null_embedding.ndim - 1))
        )
        cond = repeat_embeddings(traj.cond, repeats)
        both = self.adapter.predict_noise(
            torch.cat([latents, latents]), traj.timesteps[step_index], cat_embeddings([null, cond])
        )
        eps_uncond, eps_cond = both.chunk(2)
        return cfg_combine(eps_uncond, eps_cond, self.config.guidance_scale), eps_cond

    def score_images(self, images: Tensor) -> Tensor:
        """Target reward of images (no graph), one score per row."""
        repeats = images.shape[0] // self.trajectory.batch_size
        with torch.no_grad():
            return self.reward(images, self.trajectory.prompts * repeats)

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
        weight is zero at this step. The UNet and VAE run under the
        configured autocast; the reward and the objective stay float32.
        """
        traj, config = self.trajectory, self.config
        repeats = null_packed.shape[0] // traj.batch_size
        tile = lambda x: x.repeat(repeats, *[1] * (x.ndim - 1))  # noqa: E731
        latents, eps_cond = tile(latents), tile(eps_cond)
        with autocast(self.adapter.device, config.autocast_dtype):
            eps_uncond = self.adapter.predict_noise(
                latents, coefficients.timestep, self.null_embeddings(null_packed)
            )
            eps = cfg_combine(eps_uncond, eps_cond, config.guidance_scale)
            x0 = tweedie_x0(latents, eps, coefficients.signal, coefficients.noise)
            images = self.adapter.decode(downscale_latents(x0, config.decode_scale))
        reward = self.reward(images.float(), traj.prompts * repeats)
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
                kl_local = local_kl(eps_uncond, tile(eps_ref), config.guidance_scale, coefficients)
            kl_embedding = embedding_kl(null_packed, tile(traj.null_packed), config.sigma_phi_sq)
        value = self.reward_weight * reward - kl_weight * (kl_local + kl_embedding)
        return value, {"reward": reward, "kl_local": kl_local, "kl_embedding": kl_embedding}

    # --- one denoising step -------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int = 0) -> dict[str, Any]:
        """Steps 1-4 of METHOD.md at step index ``batch``; returns the transition."""
        step_index = int(batch)
        traj, config = self.trajectory, self.config
        timestep = traj.timesteps[step_index]
        coefficients = traj.coefficients[step_index]
        latents = traj.latents
        num_inner = traj.inner_steps[step_index]
        adapter = self.adapter

        # 1. Conditional branch: once, without grad (the greedy winner's, if cached).
        eps_cond = traj.cached_cond_eps
        traj.cached_cond_eps = None
        if eps_cond is None:
            with torch.no_grad():
                eps_cond = adapter.predict_noise(latents, timestep, traj.cond)

        # 2. Reference unconditional branch eps(x_t, t, phi): once, without grad,
        #    and only when the KL term is active at this step (same precision as step 3).
        eps_ref = None
        if num_inner > 0 and config.kl_weight * self.kl_scale > 0:
            with torch.no_grad(), autocast(adapter.device, config.autocast_dtype):
                eps_ref = adapter.predict_noise(latents, timestep, traj.null)

        # 3. Inner loop: num_inner ascent steps on phi' (warm start, fresh Adam).
        inner_rows = self._optimise(latents, eps_cond, eps_ref, coefficients, num_inner)

        # 4. Transition mean with the final phi'.
        with torch.no_grad():
            eps_uncond = adapter.predict_noise(latents, timestep, self.null_embeddings())
            eps = cfg_combine(eps_uncond, eps_cond, config.guidance_scale)
            mean = transition_mean(latents, eps, coefficients)
        traj.phi.append(self.null_embedding.detach().cpu().clone())
        return {
            "mean": mean,
            "std": coefficients.std,
            "row": self._step_row(step_index, timestep, inner_rows),
        }

    def _optimise(
        self,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
        num_inner: int,
    ) -> list[dict[str, Any]]:
        if num_inner == 0:
            return []
        optimizer = self.optimizers()
        reset_optimizer_state(optimizer)
        plateau = Plateau(self.config.early_stop_patience, self.config.early_stop_tolerance)
        networks = self.adapter.frozen_modules()
        with gradient_checkpointing(networks, self.config.gradient_checkpointing):
            return self._inner_loop(
                optimizer, plateau, latents, eps_cond, eps_ref, coefficients, num_inner
            )

    def _inner_loop(
        self,
        optimizer: Any,
        plateau: Plateau,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
        num_inner: int,
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for _ in range(num_inner):
            if self.zeroth_order:
                with torch.no_grad():
                    grad, values, parts = self._zeroth_order_step(
                        latents, eps_cond, eps_ref, coefficients
                    )
                finite = bool(torch.isfinite(grad).all() and torch.isfinite(values).all())
                if finite:
                    optimizer.zero_grad()
                    self.null_embedding.grad = -grad  # Adam minimises -J
                    optimizer.step()
            else:
                values, parts = self.objective(
                    self.null_embedding, latents, eps_cond, eps_ref, coefficients
                )
                finite = bool(torch.isfinite(values).all())
                if finite:
                    optimizer.zero_grad()
                    self.manual_backward(-values.sum())
                    grad = self.null_embedding.grad
                    finite = bool(torch.isfinite(grad).all())
                    if finite:
                        optimizer.step()
            rows.append(inner_step_row(values, parts, grad if finite else None, skipped=not finite))
            if plateau.should_stop(rows[-1]["objective"]):
                break  # early stop: the objective has stopped improving
        return rows

    def _zeroth_order_step(
        self,
        latents: Tensor,
        eps_cond: Tensor,
        eps_ref: Tensor | None,
        coefficients: StepCoefficients,
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        recorded: dict[str, Tensor] = {}
        batch = self.trajectory.batch_size

        def objective(params: Tensor) -> Tensor:
            values, parts = self.objective(params, latents, eps_cond, eps_ref, coefficients)
            recorded.update({key: value[:batch] for key, value in parts.items()})
            recorded["value"] = values[:batch]
            return values

        grad = zeroth_order_gradient(
            objective,
            self.null_embedding.detach(),
            num_samples=self.config.zo_samples,
            smoothing=self.config.zo_smoothing,
            generator=self.trajectory.generator,
        )
        values = recorded.pop("value")
        return grad, values, recorded

    def _step_row(
        self, step_index: int, timestep: int, inner: list[dict[str, Any]]
    ) -> dict[str, Any]:
        last = inner[-1] if inner else {}
        return {
            "step": step_index,
            "timestep": int(timestep),
            "kl_scale": float(self.kl_scale),
            "lambda2": float(self.config.kl_weight * self.kl_scale),
            "inner_steps": len(inner),
            "skipped_steps": sum(row["skipped"] for row in inner),
            "objective": last.get("objective"),
            "reward": last.get("reward"),
            "kl_local": last.get("kl_local"),
            "kl_embedding": last.get("kl_embedding"),
            "grad_norm": last.get("grad_norm"),
            "phi_distance": float(
                (self.null_embedding.detach() - self.trajectory.null_packed).norm()
            ),
            "inner": inner,
        }

    # --- advancing the trajectory -----------------------------------------------
    def on_train_batch_end(self, outputs: dict[str, Any], batch: Any, batch_idx: int) -> None:
        """Move to x_{t-1}: the greedy winner if a callback chose one, else ancestral."""
        traj = self.trajectory
        if outputs.get("next_latents") is not None:
            traj.latents = outputs["next_latents"]
            traj.cached_cond_eps = outputs.get("next_cond_eps")
        else:
            mean = outputs["mean"]
            noise = randn_tensor(
                mean.shape, generator=traj.generator, device=mean.device, dtype=mean.dtype
            )
            traj.latents = mean + outputs["std"] * noise
        traj.history.append(outputs["row"])
