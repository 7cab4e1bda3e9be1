from __future__ import annotations

import pytest
import torch

from nulltta.shapes import world
from nulltta.shapes.world import (
    BACKGROUND_RGB,
    COLOR_RGB,
    PromptError,
    PromptParts,
    check_prompt,
    make_caption,
    make_prompt,
    parse_caption,
    parse_prompt,
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
    "prompt",
    [
        "a purple circle on a white background",
        "an astronaut riding a horse",
        "",
        "a huge red circle on a white background",
        "a red circle in the middle on a white background",
        "a red circle on a white background in the centre",  # position after the background
        "a red small circle on a white background",  # size word after the colour
        "a small large red circle on a white background",
    ],
)
def test_out_of_vocabulary_prompt_names_the_vocabulary(prompt: str) -> None:
    for check in (parse_prompt, parse_caption, check_prompt):
        with pytest.raises(PromptError, match="magenta") as info:
            check(prompt)
        message = str(info.value)
        for word in ("circle", "brown", "small", "large", "in the centre", "in the bottom right"):
            assert word in message, word


def test_optional_words_are_accepted_where_the_grammar_allows_them() -> None:
    caption = "A Large red circle in the top left on a white background."
    assert parse_prompt(caption) == ("circle", "red", "white")
    assert parse_caption(caption) == PromptParts(
        "circle", "red", "white", "large", "in the top left"
    )
    assert check_prompt("a small blue cross on a gray background").size == "small"
    assert check_prompt("a blue cross in the centre on a gray background").position == (
        "in the centre"
    )
    assert parse_caption("a red circle on a white background") == PromptParts(
        "circle", "red", "white"
    )


def test_captions_round_trip_for_every_optional_word() -> None:
    for size in (None, *world.SIZE_WORDS):
        for position in (None, *world.POSITION_PHRASES):
            parts = PromptParts("triangle", "cyan", "brown", size, position)
            assert parse_caption(parts.text()) == parts
    assert make_caption("circle", "red", "white", "large", "in the top left") == (
        "a large red circle in the top left on a white background"
    )
    assert make_caption("circle", "red", "white") == make_prompt("circle", "red", "white")
    with pytest.raises(PromptError, match="size word"):
        make_caption("circle", "red", "white", size="huge")
    with pytest.raises(PromptError, match="position phrase"):
        make_caption("circle", "red", "white", position="in the middle")


def test_make_prompt_rejects_unknown_names() -> None:
    with pytest.raises(PromptError, match="shape"):
        make_prompt("hexagon", "red", "white")


def test_vocabulary_holds_every_caption_word_once() -> None:
    words = {w for p in world.all_prompts() for w in p.split()}
    words |= set(world.SIZE_WORDS) | {w for p in world.POSITION_PHRASES for w in p.split()}
    assert words <= set(world.VOCABULARY)
    assert len(world.VOCABULARY) == len(set(world.VOCABULARY))


def test_tokenizer_gives_whole_words_and_fits_the_longest_caption(tmp_path) -> None:
    from nulltta.shapes.components import MAX_LENGTH, build_tokenizer

    tok = build_tokenizer(tmp_path)
    longest = make_caption("triangle", "magenta", "brown", "large", "in the bottom right")
    for prompt in [*world.all_prompts(), longest]:
        ids = tok(prompt).input_ids
        assert len(ids) == len(prompt.split()) + 2
        assert tok.unk_token_id not in ids[1:-1]
    assert len(tok(longest).input_ids) == 14 <= MAX_LENGTH
