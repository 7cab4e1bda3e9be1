"""SDXL: phi' = (negative embeds, negative pooled embeds), on a tiny random-weight pipeline."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from lightning import Callback

from nulltta import NullTextAligner
from nulltta.adapters import StableDiffusionXLAdapter, make_adapter
from nulltta.config import AlignmentConfig
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness
from nulltta.testing_families import tiny_sdxl_pipeline

PROMPT = "a red circle on a white background"


def _stock(pipe, seed, **kwargs):
    return pipe(
        PROMPT,
        num_inference_steps=8,
        guidance_scale=5.0,
        eta=1.0,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        **kwargs,
    ).images


@pytest.mark.parametrize("negative_prompt", [None, "blue square"])
def test_plain_settings_equal_the_stock_pipeline(sdxl_pipe, negative_prompt):
    aligner = NullTextAligner(
        sdxl_pipe, "brightness", num_inference_steps=8, seed=1, negative_prompt=negative_prompt
    )
    ours = aligner.sample_baseline(PROMPT, output_type="pt")
    reference = _stock(sdxl_pipe, 1, negative_prompt=negative_prompt)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_v_prediction_sdxl_equals_the_stock_pipeline():
    pipe = tiny_sdxl_pipeline(prediction_type="v_prediction", force_zeros_for_empty_prompt=False)
    ours = NullTextAligner(pipe, "brightness", num_inference_steps=8, seed=4).sample_baseline(
        PROMPT, output_type="pt"
    )
    torch.testing.assert_close(ours, _stock(pipe, 4), atol=1e-5, rtol=0)


def test_phi_is_zeros_where_the_config_says_and_a_negative_prompt_otherwise(sdxl_pipe):
    adapter = make_adapter(sdxl_pipe)
    assert isinstance(adapter, StableDiffusionXLAdapter)
    assert sdxl_pipe.config.force_zeros_for_empty_prompt
    cond, null = adapter.encode_prompt(PROMPT)
    assert set(null) == {"encoder_hidden_states", "text_embeds"}
    assert all(not value.any() for value in null.values())
    _, negative = adapter.encode_prompt(PROMPT, negative_prompt="blue square")
    reference = sdxl_pipe.encode_prompt(PROMPT, negative_prompt="blue square")
    torch.testing.assert_close(negative["encoder_hidden_states"], reference[1])
    torch.testing.assert_close(negative["text_embeds"], reference[3])
    assert negative["text_embeds"].abs().sum() > 0
    assert {k: tuple(v.shape[1:]) for k, v in cond.items()} == adapter.null_shapes()


def test_phi_prime_is_one_parameter_holding_both_entries(sdxl_pipe):
    config = AlignmentConfig(guidance_scale=5.0, num_inference_steps=4).validate()
    module = NullTextModule(make_adapter(sdxl_pipe), Brightness(), config)
    module.start_trajectory(PROMPT, 16, 16, torch.Generator().manual_seed(0), negative_prompt="sky")
    ((name, param),) = list(module.named_parameters())
    assert name == "null_embedding" and param.shape == (1, 16 * 16 + 8)
    unpacked = module.null_embeddings()
    for key, value in module.trajectory.null.items():
        torch.testing.assert_close(unpacked[key], value, atol=0, rtol=0)


def test_time_ids_are_the_pipelines(sdxl_pipe):
    adapter = make_adapter(sdxl_pipe)
    ids = adapter.time_ids(32, 48, pooled_dim=8)
    assert ids.tolist() == [[32.0, 48.0, 0.0, 0.0, 32.0, 48.0]]


def test_family_defaults_reach_the_aligner(sdxl_pipe):
    aligner = NullTextAligner(
        sdxl_pipe, "brightness", num_inference_steps=2, n_min=0, n_max=1, num_candidates=1
    ).fit(PROMPT)
    assert aligner.config_.guidance_scale == 5.0
    assert aligner.resolution_ == make_adapter(sdxl_pipe).default_resolution() == (16, 16)
    assert aligner.phi_.shape == (2, 1, 16 * 16 + 8)


class _CheckpointingSpy(Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        pipe = pl_module.adapter.pipeline
        self.seen.append((pipe.unet.is_gradient_checkpointing, pipe.vae.is_gradient_checkpointing))


def test_gradient_checkpointing_is_on_during_a_run_only(sdxl_pipe, fast_kwargs):
    spy = _CheckpointingSpy()
    NullTextAligner(sdxl_pipe, "brightness", callbacks=[spy], **fast_kwargs).fit(PROMPT)
    assert spy.seen and all(unet and vae for unet, vae in spy.seen)
    assert not sdxl_pipe.unet.is_gradient_checkpointing
    assert not sdxl_pipe.vae.is_gradient_checkpointing
    adapter = make_adapter(sdxl_pipe, gradient_checkpointing=False)
    with adapter.frozen():
        assert not sdxl_pipe.unet.is_gradient_checkpointing


def _objective_gradient(pipe, checkpointing):
    config = AlignmentConfig(guidance_scale=5.0, num_inference_steps=4).validate()
    adapter = make_adapter(pipe, gradient_checkpointing=checkpointing)
    module = NullTextModule(adapter, Brightness(), config)
    traj = module.start_trajectory(PROMPT, 16, 16, torch.Generator().manual_seed(0))
    with adapter.frozen():
        assert pipe.unet.is_gradient_checkpointing == checkpointing
        with torch.no_grad():
            eps_cond = adapter.predict_noise(traj.latents, traj.timesteps[1], traj.cond)
        phi = module.null_embedding.detach().clone().add_(0.1).requires_grad_(True)
        values, _ = module.objective(phi, traj.latents, eps_cond, None, traj.coefficients[1])
        values.sum().backward()
    return phi.grad


def test_checkpointing_leaves_the_gradient_unchanged(sdxl_pipe):
    with_checkpoints = _objective_gradient(sdxl_pipe, True)
    without = _objective_gradient(sdxl_pipe, False)
    assert with_checkpoints.abs().sum() > 0
    torch.testing.assert_close(with_checkpoints, without, atol=1e-6, rtol=1e-5)


def test_float16_vae_with_force_upcast_decodes_in_float32(sdxl_pipe):
    components = dict(sdxl_pipe.components)
    vae = type(sdxl_pipe.vae).from_config({**sdxl_pipe.vae.config, "force_upcast": True})
    vae.load_state_dict(sdxl_pipe.vae.state_dict())
    components["vae"] = vae.half().eval()
    pipe = StableDiffusionXLPipeline(**components)
    reference_vae = copy.deepcopy(vae).float()  # the float16 weights, upcast
    adapter = make_adapter(pipe)
    latents = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        images = adapter.decode(latents)
        reference = reference_vae.decode(latents / vae.config.scaling_factor).sample
    torch.testing.assert_close(images, (reference / 2 + 0.5).clamp(0, 1), atol=1e-6, rtol=0)
    assert pipe.vae.dtype == torch.float16  # the user's VAE is never converted
    assert adapter.decoding_vae() is not pipe.vae
    assert adapter.decoding_vae() in adapter.frozen_modules()


def test_reward_goes_up(sdxl_pipe, fast_kwargs):
    wins = 0
    for seed in range(3):
        aligner = NullTextAligner(
            sdxl_pipe, "brightness", seed=seed, num_candidates=1, **fast_kwargs
        ).fit(PROMPT)
        wins += aligner.reward_ > aligner.score(aligner.sample_baseline(output_type="pt"))
    assert wins >= 2
