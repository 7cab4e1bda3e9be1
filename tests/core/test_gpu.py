"""GPU subset: run with `pytest -m gpu` on a machine with CUDA (skipped elsewhere)."""

from __future__ import annotations

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
    aligner = NullTextAligner(pipe, "brightness", num_inference_steps=6, n_min=1, n_max=2)
    aligner.fit("a red circle")
    assert aligner.history_[-1]["memory_kind"] == "cuda_max_allocated"
    assert aligner.phi_.dtype == torch.float32
    assert 0 <= aligner.reward_ <= 1


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
