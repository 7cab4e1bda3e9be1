"""Precision defaults, compiled networks and the light gradient decoder."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderTiny

from nulltta import NullTextAligner
from nulltta.adapters import make_adapter
from nulltta.config import AlignmentConfig
from nulltta.loop import run_denoising_loop
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness
from nulltta.speedups import resolve_autocast
from nulltta.testing_families import tiny_sd3_pipeline

PROMPT = "a red circle"


@pytest.mark.parametrize(
    ("requested", "family", "device", "expected"),
    [
        ("auto", "float16", "cuda", "float16"),
        ("auto", "float16", "cpu", None),
        ("auto", None, "cuda", None),
        (None, "float16", "cuda", None),
        ("bfloat16", None, "cpu", "bfloat16"),
    ],
)
def test_auto_precision_is_the_familys_on_cuda_and_float32_elsewhere(
    requested, family, device, expected
):
    assert resolve_autocast(requested, family, device) == expected


def test_family_precision_on_cuda_follows_the_release():
    from nulltta.adapters.sd3 import StableDiffusion3Adapter
    from nulltta.adapters.sdxl import StableDiffusionXLAdapter
    from nulltta.adapters.stable_diffusion import StableDiffusionAdapter

    assert (StableDiffusionAdapter.cuda_denoiser_dtype, StableDiffusionAdapter.cuda_vae_dtype) == (
        "float16",
        None,
    )  # fp16 UNet, fp32 VAE, as released
    assert StableDiffusionXLAdapter.cuda_vae_dtype is None  # the SDXL VAE overflows in fp16
    assert StableDiffusion3Adapter.cuda_denoiser_dtype == "bfloat16"


def test_on_the_cpu_auto_runs_float32_and_says_so(tiny_pipe, fast_kwargs):
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs).fit(PROMPT)
    assert aligner.config_.autocast_dtype is None and aligner.config_.vae_autocast_dtype is None
    explicit = NullTextAligner(tiny_pipe, "brightness", autocast_dtype=None, **fast_kwargs)
    assert explicit.fit(PROMPT).image_.tobytes() == aligner.image_.tobytes()


@pytest.mark.parametrize("family", ["sd", "sd3"])
def test_a_compiled_run_equals_eager_and_compiles_once_for_every_timestep(tiny_pipe, family):
    # (SDXL's adapter checkpoints its UNet by default, which makes tracing slow here.)
    pipe = {"sd": lambda: tiny_pipe, "sd3": tiny_sd3_pipeline}[family]()
    config = AlignmentConfig(
        num_inference_steps=5, n_min=1, n_max=2, schedule_rate=0.3, num_candidates=1,
        guidance_scale=5.0,
    ).validate()  # fmt: skip

    def run(compile_backend: str | None) -> tuple[NullTextModule, int]:
        adapter = make_adapter(pipe)
        module = NullTextModule(adapter, Brightness(), config)
        if compile_backend is not None:
            # aot_eager traces and partitions the graphs as inductor does, without code
            # generation: what decides recompilation is the same, and it is fast.
            adapter.compile("default", backend=compile_backend)
        size = adapter.default_resolution()
        module.start_trajectory(PROMPT, *size, torch.Generator().manual_seed(0))
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        run_denoising_loop(module)
        return module, torch._dynamo.utils.counters["stats"]["unique_graphs"]

    eager, _ = run(None)
    compiled, graphs = run("aot_eager")
    torch.testing.assert_close(compiled.trajectory.latents, eager.trajectory.latents)
    # Graphs for the denoiser (with and without grad) and the decoder, and no new
    # one for any of the 5 timesteps (a recompile per timestep would add 5 or more).
    assert 0 < graphs <= 6


def _tiny_autoencoder(seed: int = 0) -> AutoencoderTiny:
    torch.manual_seed(seed)
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
    ).eval()


def test_the_gradient_decoder_carries_the_reward_gradient_and_nothing_else(tiny_pipe):
    tiny = _tiny_autoencoder()
    calls = {"tiny": 0, "vae": 0}

    def count(name):
        def hook(module, args, output):
            calls[name] += args[0].shape[0]

        return hook

    handles = [
        tiny.decoder.register_forward_hook(count("tiny")),
        tiny_pipe.vae.decoder.register_forward_hook(count("vae")),
    ]
    settings = dict(num_inference_steps=5, n_min=2, n_max=2, num_candidates=3, seed=1)
    try:
        light = NullTextAligner(tiny_pipe, "brightness", gradient_decoder=tiny, **settings)
        light.fit(PROMPT)
    finally:
        for handle in handles:
            handle.remove()
    inner_steps = sum(light.history_[:, "inner_steps"])
    assert calls["tiny"] == inner_steps == 10  # one decode per inner step, batch 1
    # The full VAE: K initial candidates, K candidates per step, and the final image.
    assert calls["vae"] == 3 + 3 * 5 + 1
    assert all(p.grad is None and p.requires_grad for p in tiny.parameters())
    full = NullTextAligner(tiny_pipe, "brightness", **settings).fit(PROMPT)
    assert not torch.equal(light.phi_, full.phi_)  # the gradient went through another decoder
