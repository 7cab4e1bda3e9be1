from __future__ import annotations

import math

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.adapters import make_adapter
from nulltta.config import AlignmentConfig
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness, CallableReward
from nulltta.speedups import Plateau, downscale_latents, gradient_checkpointing, strided_schedule

PROMPT = "a red circle"


def _module(pipe, reward=None, **config):
    config = AlignmentConfig(num_inference_steps=6, n_min=1, n_max=2, **config).validate()
    module = NullTextModule(make_adapter(pipe), reward or Brightness(), config)
    module.start_trajectory(PROMPT, 16, 16, torch.Generator().manual_seed(0))
    return module


def _objective_grad(module):
    traj = module.trajectory
    coefficients = traj.coefficients[2]
    with torch.no_grad():
        eps_cond = module.adapter.predict_noise(traj.latents, coefficients.timestep, traj.cond)
        eps_ref = module.adapter.predict_noise(traj.latents, coefficients.timestep, traj.null)
    phi = module.null_embedding.detach().clone() + 0.05
    phi.requires_grad_(True)
    with module.adapter.frozen():
        value, _ = module.objective(phi, traj.latents, eps_cond, eps_ref, coefficients)
        (grad,) = torch.autograd.grad(value.sum(), phi)
    return value.detach(), grad


def test_checkpointing_gives_the_same_gradient_and_restores_the_flags(tiny_pipe):
    plain = _module(tiny_pipe)
    value, grad = _objective_grad(plain)
    checkpointed = _module(tiny_pipe, gradient_checkpointing=True)
    modules = checkpointed.adapter.frozen_modules()
    with gradient_checkpointing(modules):
        assert tiny_pipe.unet.is_gradient_checkpointing and tiny_pipe.vae.is_gradient_checkpointing
        value_ckpt, grad_ckpt = _objective_grad(checkpointed)
    assert not tiny_pipe.unet.is_gradient_checkpointing
    assert not tiny_pipe.vae.is_gradient_checkpointing
    torch.testing.assert_close(value_ckpt, value)
    torch.testing.assert_close(grad_ckpt, grad, rtol=1e-5, atol=1e-7)
    assert grad.abs().sum() > 0


def test_bf16_autocast_runs_in_bf16_and_stays_close(tiny_pipe):
    value, grad = _objective_grad(_module(tiny_pipe))
    value_bf16, grad_bf16 = _objective_grad(_module(tiny_pipe, autocast_dtype="bfloat16"))
    assert value_bf16.dtype == torch.float32
    assert not torch.equal(value_bf16, value)  # it really ran in lower precision
    torch.testing.assert_close(value_bf16, value, rtol=2e-2, atol=2e-2)
    cosine = torch.nn.functional.cosine_similarity(grad.flatten(), grad_bf16.flatten(), dim=0)
    assert cosine > 0.9


def test_decode_scale_feeds_the_reward_a_smaller_image_in_the_inner_loop_only(tiny_pipe):
    sizes = []

    def record(images, prompts):
        sizes.append(tuple(images.shape[-2:]))
        return images.mean((1, 2, 3))

    reward = CallableReward(record, differentiable=True)
    aligner = NullTextAligner(
        tiny_pipe,
        reward,
        num_inference_steps=4,
        n_min=1,
        n_max=1,
        num_candidates=1,
        decode_scale=0.5,
    ).fit(PROMPT)
    assert (8, 8) in sizes  # inner loop: half resolution
    assert sizes[-1] == (16, 16)  # the final score: full resolution
    assert aligner.image_.size == (16, 16)


def test_downscale_latents_halves_the_sides_and_keeps_smooth_content():
    constant = torch.full((2, 4, 8, 8), 0.7)
    small = downscale_latents(constant, 0.5)
    assert small.shape == (2, 4, 4, 4)
    torch.testing.assert_close(small, torch.full((2, 4, 4, 4), 0.7))
    assert downscale_latents(constant, 1.0) is constant


def test_early_stop_cuts_inner_steps_recorded_in_history(tiny_pipe):
    settings = dict(num_inference_steps=5, n_min=4, n_max=4, num_candidates=1)
    full = NullTextAligner(tiny_pipe, "brightness", **settings).fit(PROMPT)
    stopped = NullTextAligner(
        tiny_pipe, "brightness", early_stop_patience=1, early_stop_tolerance=1e9, **settings
    ).fit(PROMPT)
    assert full.history_[:, "inner_steps"] == [4] * 5
    # the first value always counts as an improvement; the second cannot beat it by 1e9
    assert stopped.history_[:, "inner_steps"] == [2] * 5


def test_plateau_counts_steps_without_improvement():
    plateau = Plateau(patience=2, tolerance=0.1)
    assert [plateau.should_stop(v) for v in (1.0, 1.5, 1.55, None)] == [False, False, False, True]
    assert not any(Plateau(None).should_stop(v) for v in (3.0, 2.0, 1.0))


def test_optimize_every_skips_timesteps(tiny_pipe):
    module = _module(tiny_pipe, optimize_every=2)
    assert module.trajectory.inner_steps[1::2] == [0, 0, 0]
    assert all(n > 0 for n in module.trajectory.inner_steps[0::2])
    assert strided_schedule([5, 5, 6, 6, 7], 3) == [5, 0, 0, 6, 0]


@pytest.mark.parametrize(
    "setting",
    [
        {"decode_scale": 0.0},
        {"decode_scale": 1.5},
        {"optimize_every": 0},
        {"autocast_dtype": "fp8"},
        {"early_stop_patience": 0},
        {"early_stop_tolerance": -1.0},
    ],
)
def test_bad_speed_settings_are_refused(setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        AlignmentConfig(**setting).validate()


def test_defaults_keep_the_released_behaviour():
    config = AlignmentConfig()
    assert not config.gradient_checkpointing
    # "auto": the family's reduced precision on CUDA only (float32 on the CPU, as before).
    assert config.autocast_dtype == "auto" and config.vae_autocast_dtype == "auto"
    assert config.compile_mode is None and config.decode_scale == 1.0
    assert config.early_stop_patience is None and config.optimize_every == 1
    assert math.isclose(config.schedule_rate, 0.008)
