from __future__ import annotations

import numpy as np
import pytest
import torch

from nulltta.shapes import world
from nulltta.shapes.world import (
    BACKGROUND_RGB,
    COLOR_RGB,
    PromptError,
    check_prompt,
    make_prompt,
    parse_prompt,
    preference_score,
    render,
    sample_batch,
)


def test_render_range_shape_and_colours() -> None:
    image = render("circle", "red", "white", size=0.6, cx=0.5, cy=0.5)
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert torch.allclose(image[:, 16, 16], torch.tensor(COLOR_RGB["red"]))
    assert torch.allclose(image[:, 0, 0], torch.tensor(BACKGROUND_RGB["white"]))


def test_render_is_antialiased() -> None:
    image = render("circle", "blue", "black", size=0.6, cx=0.5, cy=0.5)
    blue = image[2]
    edge = (blue > BACKGROUND_RGB["black"][2] + 0.05) & (blue < COLOR_RGB["blue"][2] - 0.05)
    assert edge.sum() > 8  # partial coverage at the rim


@pytest.mark.parametrize("shape", world.SHAPES)
def test_shapes_differ_and_scale(shape: str) -> None:
    small = render(shape, "green", "gray", size=0.3, cx=0.5, cy=0.5)
    large = render(shape, "green", "gray", size=0.7, cx=0.5, cy=0.5)
    assert (large - small).abs().sum() > 10
    others = [render(s, "green", "gray", 0.6, 0.5, 0.5) for s in world.SHAPES if s != shape]
    mine = render(shape, "green", "gray", 0.6, 0.5, 0.5)
    assert all((mine - other).abs().sum() > 5 for other in others)


def test_sample_batch_is_deterministic_and_consistent() -> None:
    a, b, c = sample_batch(16, seed=3), sample_batch(16, seed=3), sample_batch(16, seed=4)
    assert torch.equal(a.images, b.images) and a.prompts == b.prompts
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (16, 3, 32, 32)
    for i, prompt in enumerate(a.prompts):
        assert parse_prompt(prompt) == (
            world.SHAPES[a.shape[i]],
            world.COLORS[a.color[i]],
            world.BACKGROUNDS[a.background[i]],
        )
    assert (a.size >= world.MIN_SIZE).all() and (a.size <= world.MAX_SIZE).all()
    assert ((a.cx - a.size / 2) > 0).all() and ((a.cx + a.size / 2) < 1).all()


def test_prompts_round_trip() -> None:
    prompts = world.all_prompts()
    assert len(prompts) == len(set(prompts)) == 96
    assert parse_prompt("A Red Circle on a White background.") == ("circle", "red", "white")
    assert make_prompt(*("circle", "red", "white")) == "a red circle on a white background"


@pytest.mark.parametrize(
    "prompt", ["a purple circle on a white background", "an astronaut riding a horse", ""]
)
def test_out_of_vocabulary_prompt_names_the_vocabulary(prompt: str) -> None:
    with pytest.raises(PromptError, match="magenta") as info:
        parse_prompt(prompt)
    assert "circle" in str(info.value) and "brown" in str(info.value)
    with pytest.warns(UserWarning, match="vocabulary|cannot read"):
        assert check_prompt(prompt) is False


def test_make_prompt_rejects_unknown_names() -> None:
    with pytest.raises(PromptError, match="shape"):
        make_prompt("hexagon", "red", "white")


def test_preference_prefers_large_centred_high_contrast() -> None:
    base = preference_score(0.5, 0.5, 0.5, "red", "gray")
    assert preference_score(0.7, 0.5, 0.5, "red", "gray") > base
    assert preference_score(0.5, 0.3, 0.3, "red", "gray") < base
    assert preference_score(0.5, 0.5, 0.5, "yellow", "black") > preference_score(
        0.5, 0.5, 0.5, "yellow", "white"
    )
    values = preference_score(
        np.array([0.3, 0.75]),
        np.array([0.5, 0.5]),
        np.array([0.5, 0.5]),
        ["red", "red"],
        ["gray", "gray"],
    )
    assert values.shape == (2,) and 0 <= values.min() and values.max() <= 1


def test_tokenizer_gives_whole_words(tmp_path) -> None:
    from nulltta.shapes.components import build_tokenizer

    tok = build_tokenizer(tmp_path)
    for prompt in world.all_prompts():
        ids = tok(prompt).input_ids
        assert len(ids) == len(prompt.split()) + 2
        assert tok.unk_token_id not in ids[1:-1]
