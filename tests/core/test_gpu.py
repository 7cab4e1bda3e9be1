"""GPU subset: run with `pytest -m gpu` on a machine with CUDA (skipped elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nulltta import NullTextAligner
from nulltta.loading import embedded_model_available
from nulltta.testing import tiny_stable_diffusion_pipeline

pytestmark = pytest.mark.gpu


def test_fp16_unet_on_cuda_aligns_and_profiles_cuda_memory():
    pipe = tiny_stable_diffusion_pipeline()
    pipe.unet.half()
    pipe.to("cuda")
    # Reward-only ascent (no KL) with a large step: on CPU in fp32 this raises
    # brightness by 2.5e-4 to 5e-4 over plain sampling on each of these seeds.
    settings = dict(num_inference_steps=8, n_min=1, n_max=3, num_candidates=1)
    settings.update(kl_weight=0.0, learning_rate=0.1)
    wins = 0
    for seed in range(3):
        aligner = NullTextAligner(pipe, "brightness", seed=seed, **settings).fit("a red circle")
        history = aligner.history_
        assert history[-1]["memory_kind"] == "cuda_max_allocated"
        assert all(row["peak_memory_mb"] > 0 for row in history)
        assert aligner.phi_.dtype == torch.float32 and torch.isfinite(aligner.phi_).all()
        # fp16 gradients reached phi' finite and non-zero: Adam's first step moves
        # each element by about the learning rate (1.13 = 0.1 sqrt(128) on CPU).
        one_step = 0.1 * aligner.phi_[0].numel() ** 0.5
        assert history[0]["phi_distance"] > 0.5 * one_step
        # reward_ is the Rec. 601 mean luminance of image_, computed here from its
        # pixels (the 8-bit image is at most half a level from the float one).
        pixels = np.asarray(aligner.image_, dtype=np.float64) / 255
        luminance = float((pixels @ np.array([0.299, 0.587, 0.114])).mean())
        assert abs(aligner.reward_ - luminance) < 0.5 / 255 + 1e-6
        wins += aligner.reward_ > aligner.score(aligner.sample_baseline(output_type="pt"))
    assert wins >= 2  # alignment beats plain sampling with the same seed


def test_cuda_parity_with_the_stock_pipeline():
    pipe = tiny_stable_diffusion_pipeline().to("cuda")
    aligner = NullTextAligner(pipe, "brightness", num_inference_steps=8, seed=2)
    ours = aligner.sample_baseline("a red circle", output_type="pt")
    reference = pipe(
        "a red circle",
        num_inference_steps=8,
        eta=1.0,
        generator=torch.Generator("cuda").manual_seed(2),
        output_type="pt",
    ).images.cpu()
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=0)


def test_bf16_autocast_on_cuda_runs_the_inner_loop_in_bf16_and_keeps_phi_fp32():
    pipe = tiny_stable_diffusion_pipeline().to("cuda")
    dtypes = set()
    handle = pipe.unet.register_forward_hook(
        # The adapter calls the UNet with return_dict=False: the output is a tuple.
        lambda module, args, output: dtypes.add(output[0].dtype)
    )
    try:
        aligner = NullTextAligner(
            pipe, "brightness", num_inference_steps=6, n_min=1, n_max=2, autocast_dtype="bfloat16"
        ).fit("a red circle")
    finally:
        handle.remove()
    assert torch.bfloat16 in dtypes
    assert aligner.phi_.dtype == torch.float32
    assert torch.isfinite(aligner.phi_).all()


@pytest.mark.skipif(not embedded_model_available(), reason="no embedded model")
def test_embedded_model_alignment_on_cuda_raises_the_target_reward():
    from nulltta.shapes.model import load_embedded_pipeline

    pipe = load_embedded_pipeline().to("cuda")
    gains = []
    for seed in range(3):
        aligner = NullTextAligner(
            pipe, "shapes-preference", seed=seed, num_inference_steps=20, n_min=2, n_max=6
        ).fit("a blue square on a white background")
        gains.append(aligner.reward_ - aligner.score(aligner.sample_baseline(output_type="pt")))
    assert sum(gain > 0 for gain in gains) >= 2
    assert sum(gains) > 0
