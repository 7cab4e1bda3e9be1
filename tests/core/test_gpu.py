"""GPU subset: run with `pytest -m gpu` on a machine with CUDA (skipped elsewhere)."""

from __future__ import annotations

import pytest
import torch

from nulltta import NullTextAligner
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
