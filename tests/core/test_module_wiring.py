"""``NullTextModule``'s wiring: every setting reaches the computation it names.

Each test here was written against a mutant of ``nulltta/module.py`` that the
other tests let through (``tests/mutation/module.cfg``): a setting dropped on
its way to the adapter, the optimiser or the estimator, a UNet pass run when
it is not needed, a record under the wrong name.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.adapters import make_adapter, repeat_embeddings
from nulltta.bench.cost import CostCounter
from nulltta.config import AlignmentConfig
from nulltta.equations import paper_local_kl
from nulltta.loop import run_denoising_loop
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness
from nulltta.testing_families import tiny_sdxl_pipeline

PROMPT = "a red circle"


def _module(pipe, negative_prompt=None, **settings) -> NullTextModule:
    base = dict(num_inference_steps=4, n_min=1, n_max=1, num_candidates=1, anneal_kl=False)
    config = AlignmentConfig(**{**base, **settings}).validate()
    module = NullTextModule(make_adapter(pipe), Brightness(), config)
    module.start_trajectory(
        PROMPT, 16, 16, torch.Generator().manual_seed(0), negative_prompt=negative_prompt
    )
    return module


def _branches(module: NullTextModule, step: int = 1):
    traj = module.trajectory
    coefficients = traj.coefficients[step]
    with torch.no_grad():
        eps_cond = module.adapter.predict_noise(traj.latents, coefficients.timestep, traj.cond)
        eps_ref = module.adapter.predict_noise(traj.latents, coefficients.timestep, traj.null)
    return traj.latents, eps_cond, eps_ref, coefficients


def test_precision_compile_and_gradient_decoder_settings_reach_the_adapter(tiny_pipe):
    decoder = torch.nn.Identity()
    config = AlignmentConfig(
        autocast_dtype="bfloat16", vae_autocast_dtype="float16", compile_mode="default"
    ).validate()
    adapter = make_adapter(tiny_pipe)
    NullTextModule(adapter, Brightness(), config, gradient_decoder=decoder)
    assert (adapter.denoiser_autocast, adapter.vae_autocast) == ("bfloat16", "float16")
    assert adapter.denoiser_call() is not adapter.denoiser  # the compiled wrapper
    assert adapter.gradient_decoder is decoder
    adapter.compile(None)  # and None undoes it
    assert adapter.denoiser_call() is adapter.denoiser


def test_one_generator_for_several_prompts_is_refused_with_the_fix(tiny_pipe):
    module = NullTextModule(make_adapter(tiny_pipe), Brightness(), AlignmentConfig().validate())
    with pytest.raises(ValueError, match="pass one generator per trajectory"):
        module.start_trajectory([PROMPT, PROMPT], 16, 16, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("parameterisation", ["embedding", "text_manifold"])
def test_the_negative_prompt_is_phi_and_the_start_of_phi_prime(tiny_pipe, parameterisation):
    module = _module(tiny_pipe, "blurry", null_parameterisation=parameterisation)
    _, expected = module.adapter.encode_prompt(PROMPT, "blurry")
    _, empty = module.adapter.encode_prompt(PROMPT, None)
    null = module.trajectory.null["encoder_hidden_states"]
    torch.testing.assert_close(null, expected["encoder_hidden_states"])
    assert not torch.allclose(null, empty["encoder_hidden_states"])
    torch.testing.assert_close(module.phi_prime(), module.trajectory.null_packed, atol=1e-5,
                               rtol=1e-5)  # fmt: skip


def test_the_learning_rate_is_the_size_of_adams_first_step(tiny_pipe):
    # Adam's first step moves every coordinate by lr * g / (|g| + eps): lr where g != 0.
    module = _module(tiny_pipe, learning_rate=0.0037, kl_weight=0.0)
    run_denoising_loop(module)
    step = (module.trajectory.phi[0] - module.trajectory.null_packed).abs()
    assert float(step.max()) == pytest.approx(0.0037, rel=1e-3)


def test_null_embeddings_tile_every_entry_for_candidates():
    # Every shipped adapter trains every entry of phi; the base class also keeps
    # untrained ones (here SDXL's pooled embedding), which must be tiled too.
    adapter = make_adapter(tiny_sdxl_pipeline(seed=0))
    adapter.trainable_keys = ("encoder_hidden_states",)
    config = AlignmentConfig(num_inference_steps=4).validate()
    module = NullTextModule(adapter, Brightness(), config)
    module.start_trajectory(PROMPT, 16, 16, torch.Generator().manual_seed(0))
    one = module.null_embeddings()
    packed = module.phi_prime().detach()
    two = module.null_embeddings(torch.cat([packed, packed]))
    expected = repeat_embeddings(one, 2)
    assert set(two) == {"encoder_hidden_states", "text_embeds"}
    for key, value in expected.items():
        torch.testing.assert_close(two[key], value)


def test_the_kl_terms_are_zero_without_a_reference_or_a_weight_and_present_at_weight_one(
    tiny_pipe,
):
    def kl_parts(kl_weight, with_reference):
        module = _module(tiny_pipe, kl_weight=kl_weight, sigma_phi_sq=0.01)
        latents, eps_cond, eps_ref, coefficients = _branches(module)
        moved = module.null_embedding.detach() + 0.05
        value, parts = module.objective(
            moved, latents, eps_cond, eps_ref if with_reference else None, coefficients
        )
        parts = {key: part.detach() for key, part in parts.items()}
        return value.detach(), parts, module.reward_weight

    for kl_weight, with_reference in ((1.0, False), (0.0, True)):
        value, parts, reward_weight = kl_parts(kl_weight, with_reference)
        assert float(parts["kl_local"]) == 0 and float(parts["kl_embedding"]) == 0
        torch.testing.assert_close(value, parts["reward"] * reward_weight)
    value, parts, reward_weight = kl_parts(1.0, True)
    assert float(parts["kl_local"]) > 0 and float(parts["kl_embedding"]) > 0
    expected = parts["reward"] * reward_weight
    torch.testing.assert_close(value, expected - parts["kl_local"] - parts["kl_embedding"])


def test_a_deterministic_step_drops_the_exact_local_kl_but_keeps_the_papers(tiny_pipe):
    for kl_mode in ("exact", "paper"):
        module = _module(tiny_pipe, kl_weight=1.0, kl_mode=kl_mode)
        latents, eps_cond, eps_ref, coefficients = _branches(module)
        deterministic = dataclasses.replace(coefficients, std=0.0)
        moved = module.null_embedding.detach() + 0.05
        with torch.no_grad():
            value, parts = module.objective(moved, latents, eps_cond, eps_ref, deterministic)
        assert torch.isfinite(value).all()
        if kl_mode == "exact":
            assert float(parts["kl_local"]) == 0
        else:
            with torch.no_grad():
                eps_uncond = module.adapter.predict_noise(
                    latents, coefficients.timestep, module.null_embeddings(moved)
                )
            expected = paper_local_kl(
                eps_uncond, eps_ref, module.config.guidance_scale, deterministic
            )
            assert float(parts["kl_local"]) > 0
            torch.testing.assert_close(parts["kl_local"], expected)


@pytest.mark.parametrize(
    ("n_inner", "kl_weight", "per_step"),
    [(1, 0.5, 4), (1, 0.0, 3), (0, 0.5, 2)],
    ids=["kl-on", "kl-off", "no-inner-steps"],
)
def test_unet_passes_per_step(tiny_pipe, n_inner, kl_weight, per_step):
    # conditional + reference (only with the KL on and inner steps to run)
    # + one per inner step + the transition
    module = _module(tiny_pipe, n_min=n_inner, n_max=n_inner, kl_weight=kl_weight)
    with CostCounter(tiny_pipe.unet, tiny_pipe.vae.decoder, None) as counter:
        run_denoising_loop(module)
    assert counter.counts.unet_forward == 4 * per_step  # one latent per pass here


@pytest.mark.parametrize("enabled", [True, False])
def test_gradient_checkpointing_is_on_for_the_inner_passes_when_asked(tiny_pipe, enabled):
    module = _module(tiny_pipe, n_min=2, n_max=2, gradient_checkpointing=enabled)
    passes = []  # (grad enabled, checkpointing on) for every UNet pass
    handle = tiny_pipe.unet.register_forward_pre_hook(
        lambda unet, args: passes.append(
            (torch.is_grad_enabled(), bool(unet.is_gradient_checkpointing))
        )
    )
    try:
        run_denoising_loop(module)
    finally:
        handle.remove()
    with_grad = [checkpointing for grad, checkpointing in passes if grad]
    assert len(with_grad) == 4 * 2 and all(c == enabled for c in with_grad)
    assert not tiny_pipe.unet.is_gradient_checkpointing  # restored after the run


def test_each_history_row_names_its_step_and_timestep(tiny_pipe):
    module = _module(tiny_pipe)
    run_denoising_loop(module)
    history = module.trajectory.histories()[0]
    assert [row["step"] for row in history] == [0, 1, 2, 3]
    assert [row["timestep"] for row in history] == [int(t) for t in module.trajectory.timesteps]


def test_zero_order_uses_the_configured_samples_and_radius(tiny_pipe):
    samples, radius = 3, 0.05
    module = _module(
        tiny_pipe, gradient="zeroth_order", zo_samples=samples, zo_smoothing=radius, kl_weight=0.1
    )
    traj = module.trajectory
    draws = []
    draw = traj.randn

    def recording_randn(*args, **kwargs):
        draws.append(draw(*args, **kwargs))
        return draws[-1]

    traj.randn = recording_randn
    latents, eps_cond, eps_ref, coefficients = _branches(module)
    estimate, values, _ = module._zeroth_order_step(latents, eps_cond, eps_ref, coefficients)
    (directions,) = draws
    directions = directions.squeeze(2).transpose(0, 1)  # (K, B, ...)
    assert directions.shape[0] == samples
    phi = module.null_embedding.detach()

    def objective(params):
        return module.objective(params, latents, eps_cond, eps_ref, coefficients)[0]

    with torch.no_grad():
        base = objective(phi)
        expected = sum(
            (objective(phi + radius * v) - base).view(-1, 1, 1) * v for v in directions
        ) / (samples * radius)
    torch.testing.assert_close(values, base)
    torch.testing.assert_close(estimate, expected, rtol=1e-3, atol=1e-6)


def test_a_batch_of_ancestral_steps_equals_the_trajectories_one_by_one(tiny_pipe):
    settings = dict(num_inference_steps=4, n_min=1, n_max=1, num_candidates=1, progress=False)
    batch = NullTextAligner(tiny_pipe, "brightness", batch_size=2, **settings)
    batch.fit([PROMPT, "a blue square"], seeds=[0, 1])
    for index, (prompt, seed) in enumerate(((PROMPT, 0), ("a blue square", 1))):
        alone = NullTextAligner(tiny_pipe, "brightness", seed=seed, **settings).fit(prompt)
        # float32 rounding of batched convolutions, as in test_batched.py
        torch.testing.assert_close(batch.all_latents_[index], alone.latents_[0], atol=1e-4,
                                   rtol=1e-3)  # fmt: skip
