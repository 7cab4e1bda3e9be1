from __future__ import annotations

import os
import time

import pytest
import torch
from diffusers import StableDiffusionPipeline

from nulltta.shapes.model import embedded_model_path, load_embedded_pipeline
from nulltta.shapes.world import all_prompts


def test_embedded_model_lives_in_the_package() -> None:
    path = embedded_model_path()
    assert path.parts[-2:] == ("assets", "shapes-sd")
    weights = list(path.rglob("*.safetensors"))
    assert len(weights) == 3
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 20e6
    assert not list(path.rglob("*.bin"))


def test_loads_offline_in_float32(pipe: StableDiffusionPipeline) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    start = time.perf_counter()
    fresh = load_embedded_pipeline()
    assert time.perf_counter() - start < 10
    for module in (fresh.unet, fresh.vae, fresh.text_encoder):
        assert next(module.parameters()).dtype == torch.float32
    assert fresh.safety_checker is None
    assert fresh.vae_scale_factor * fresh.unet.config.sample_size == 32


def test_null_embedding_is_text_encoder_on_empty_prompt(pipe: StableDiffusionPipeline) -> None:
    cond, null = pipe.encode_prompt(
        "a red circle on a white background", "cpu", 1, do_classifier_free_guidance=True
    )
    ids = pipe.tokenizer(
        "", padding="max_length", max_length=pipe.tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        expected = pipe.text_encoder(ids)[0]
    assert null.shape == cond.shape == expected.shape
    torch.testing.assert_close(null, expected)
    assert (null - cond).abs().max() > 1e-2


def test_tokenizer_gives_every_prompt_whole_words(pipe: StableDiffusionPipeline) -> None:
    tok = pipe.tokenizer
    assert tok.model_max_length == pipe.text_encoder.config.max_position_embeddings
    for prompt in all_prompts():
        tokens = tok.convert_ids_to_tokens(tok(prompt).input_ids)[1:-1]
        assert [t.removesuffix("</w>") for t in tokens] == prompt.split()


def test_same_seed_same_image(pipe: StableDiffusionPipeline) -> None:
    kwargs = {"num_inference_steps": 4, "guidance_scale": 5.0, "output_type": "pt"}
    a = pipe(
        "a red circle on a white background", generator=torch.Generator().manual_seed(1), **kwargs
    ).images
    b = pipe(
        "a red circle on a white background", generator=torch.Generator().manual_seed(1), **kwargs
    ).images
    assert a.shape == (1, 3, 32, 32)
    torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_plain_samples_match_their_prompts(pipe: StableDiffusionPipeline) -> None:
    from nulltta.shapes.evaluate import benchmark_prompts, sample
    from nulltta.shapes.rewards import fidelity_accuracy

    prompts, seeds = benchmark_prompts(12, seed=5)
    images = sample(pipe, prompts, seeds, guidance_scale=5.0, steps=25)
    assert images.shape == (12, 3, 32, 32)
    assert fidelity_accuracy(images, prompts).sum() >= 10
