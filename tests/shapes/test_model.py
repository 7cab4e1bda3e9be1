from __future__ import annotations

import json
import os
import shutil
import time

import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors import safe_open

from nulltta.shapes.evaluate import benchmark_prompts, sample
from nulltta.shapes.gold import measure
from nulltta.shapes.model import embedded_model_path, load_embedded_pipeline
from nulltta.shapes.world import all_prompts, make_caption, parse_prompt

#: Stored dtype of each component, as the model card states it.
STORED_DTYPES = {"unet": "F32", "vae": "F32", "text_encoder": "F32"}


def _knows_caption_words() -> bool:
    vocab = json.loads((embedded_model_path() / "tokenizer" / "vocab.json").read_text())
    words = ("small", "large", "centre", "top", "bottom", "left", "right")
    return all(f"{word}</w>" in vocab for word in words)


needs_caption_model = pytest.mark.skipif(
    not _knows_caption_words(),
    reason="the shipped model was trained without size and position words (ShapesBench 1)",
)


def test_embedded_model_lives_in_the_package_as_safetensors() -> None:
    path = embedded_model_path()
    assert path.parts[-2:] == ("assets", "shapes-sd")
    weights = list(path.rglob("*.safetensors"))
    assert len(weights) == 3
    for part, dtype in STORED_DTYPES.items():  # check every stored tensor
        file = next((path / part).glob("*.safetensors"))
        with safe_open(file, "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {dtype}, part
    assert sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) < 25e6
    assert not list(path.rglob("*.bin"))


def test_a_missing_embedded_model_names_the_command_that_trains_the_shipped_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import nulltta.shapes.model as model

    monkeypatch.setattr(model, "_ASSETS", tmp_path)
    with pytest.raises(FileNotFoundError, match="--prediction-type v_prediction"):
        model.embedded_model_path()


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


def _whole_words(tok, prompt: str) -> bool:
    tokens = tok.convert_ids_to_tokens(tok(prompt).input_ids)[1:-1]
    return [t.removesuffix("</w>") for t in tokens] == prompt.split()


def test_tokenizer_gives_every_prompt_whole_words(pipe: StableDiffusionPipeline) -> None:
    tok = pipe.tokenizer
    assert tok.model_max_length == pipe.text_encoder.config.max_position_embeddings == 16
    assert all(_whole_words(tok, prompt) for prompt in all_prompts())


@needs_caption_model
def test_tokenizer_gives_captions_whole_words(pipe: StableDiffusionPipeline) -> None:
    for size in ("small", "large"):
        for position in ("in the centre", "in the top left", "in the bottom right"):
            caption = make_caption("cross", "cyan", "black", size, position)
            assert _whole_words(pipe.tokenizer, caption), caption


def test_sample_seeds_each_pair_independently_of_the_batch(pipe: StableDiffusionPipeline) -> None:
    # evaluate.sample gives every prompt/seed pair its own generator, so an
    # image does not depend on which other pairs share its batch.
    prompts = ["a red circle on a white background", "a blue cross on a black background"]
    together = sample(pipe, prompts, [3, 4], steps=3, batch_size=2)
    alone = sample(pipe, prompts[1:], [4], steps=3, batch_size=1)
    torch.testing.assert_close(together[1:], alone, atol=1e-4, rtol=0)
    assert (together[0] - together[1]).abs().max() > 0.1


def _measured(pipe, captions: list[str], seeds: list[int]):
    images = sample(pipe, captions, seeds, steps=10, batch_size=len(captions))
    return measure(images, captions)


@needs_caption_model
def test_size_words_change_the_measured_size(pipe: StableDiffusionPipeline) -> None:
    prompts, seeds = benchmark_prompts(8, seed=3)
    small = _measured(pipe, [make_caption(*parse_prompt(p), size="small") for p in prompts], seeds)
    large = _measured(pipe, [make_caption(*parse_prompt(p), size="large") for p in prompts], seeds)
    assert float(large.size.mean()) > float(small.size.mean()) + 0.15
    assert (large.size > small.size).float().mean() >= 0.75


def _centres_for(pipe, position: str):
    prompts, seeds = benchmark_prompts(8, seed=4)
    return _measured(
        pipe, [make_caption(*parse_prompt(p), position=position) for p in prompts], seeds
    )


@needs_caption_model
@pytest.mark.parametrize("axis", ["cx", "cy"])
def test_position_phrases_move_the_measured_centre(
    pipe: StableDiffusionPipeline, axis: str
) -> None:
    top_left = _centres_for(pipe, "in the top left")
    bottom_right = _centres_for(pipe, "in the bottom right")
    low, high = getattr(top_left, axis), getattr(bottom_right, axis)
    assert float(high.mean()) > float(low.mean()) + 0.15
    assert (high > low).float().mean() >= 0.75


@pytest.mark.slow
def test_plain_samples_match_their_prompts(pipe: StableDiffusionPipeline) -> None:
    from nulltta.shapes.rewards import fidelity_accuracy

    prompts, seeds = benchmark_prompts(12, seed=5)
    images = sample(pipe, prompts, seeds, guidance_scale=5.0, steps=25)
    assert images.shape == (12, 3, 32, 32)
    assert fidelity_accuracy(images, prompts).sum() >= 10


def test_a_retrained_world_model_gets_the_embedded_profile(tmp_path) -> None:
    from nulltta.profiles import model_profile
    from nulltta.shapes.model import load_world_model

    shutil.copytree(embedded_model_path(), tmp_path / "retrained")
    world = load_world_model(tmp_path / "retrained")
    assert model_profile(world).name == "shapes-sd"
    assert model_profile(world).defaults["guidance_scale"] == 5.0
    # The same folder loaded as any diffusers folder is an unknown SD model.
    stock = StableDiffusionPipeline.from_pretrained(tmp_path / "retrained", local_files_only=True)
    assert model_profile(stock).name == "model"
