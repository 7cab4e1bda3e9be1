"""The training captions' distribution: words drawn first, geometry drawn to match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nulltta.shapes import world
from nulltta.shapes.captions import (
    POSITION_RANGES,
    SIZE_RANGES,
    from_relative,
    sample_captioned_batch,
    sample_captions,
    to_relative,
)
from nulltta.shapes.world import parse_caption


@pytest.fixture(scope="module")
def captioned() -> world.ShapeBatch:
    return sample_captioned_batch(4000, seed=11)


def test_relative_coordinates_round_trip_and_span_the_feasible_range() -> None:
    size = np.array([0.3, 0.5, 0.75])
    assert from_relative(0.0, size) == pytest.approx(size / 2 + world.MARGIN)
    assert from_relative(1.0, size) == pytest.approx(1 - size / 2 - world.MARGIN)
    assert to_relative(from_relative(0.37, size), size) == pytest.approx(0.37)


def test_word_frequencies_follow_the_design(captioned) -> None:
    parts = [parse_caption(p) for p in captioned.prompts]
    n = len(parts)
    sizes = [p.size for p in parts]
    positions = [p.position for p in parts]
    # Binomial standard error at n = 4000 is under 0.008: 4 of them is 0.03.
    assert sizes.count(None) / n == pytest.approx(0.5, abs=0.03)
    assert sizes.count("small") / n == pytest.approx(0.25, abs=0.03)
    assert positions.count(None) / n == pytest.approx(0.5, abs=0.03)
    for phrase in world.POSITION_PHRASES:
        assert positions.count(phrase) / n == pytest.approx(0.1, abs=0.02)
    both = sum(s is not None and q is not None for s, q in zip(sizes, positions, strict=True))
    assert both / n == pytest.approx(0.25, abs=0.03)  # independent words


def test_geometry_lies_in_each_words_range(captioned) -> None:
    for i, caption in enumerate(captioned.prompts):
        parts = parse_caption(caption)
        size = float(captioned.size[i])
        low, high = SIZE_RANGES[parts.size]
        assert low - 1e-6 <= size <= high + 1e-6
        (u_lo, u_hi), (v_lo, v_hi) = POSITION_RANGES[parts.position]
        u = to_relative(float(captioned.cx[i]), size)
        v = to_relative(float(captioned.cy[i]), size)
        assert u_lo - 1e-5 <= u <= u_hi + 1e-5 and v_lo - 1e-5 <= v <= v_hi + 1e-5, caption


def test_captions_without_words_follow_the_base_distribution(captioned) -> None:
    free = [i for i, p in enumerate(captioned.prompts) if parse_caption(p).size is None]
    size = captioned.size[free]
    # Uniform on [0.30, 0.75]: mean 0.525, standard error 0.13 / sqrt(2000) < 0.003.
    assert float(size.mean()) == pytest.approx((world.MIN_SIZE + world.MAX_SIZE) / 2, abs=0.01)
    assert float(size.min()) >= world.MIN_SIZE and float(size.max()) <= world.MAX_SIZE
    u = to_relative(captioned.cx.numpy(), captioned.size.numpy())
    free_position = [i for i, p in enumerate(captioned.prompts) if not parse_caption(p).position]
    assert np.mean(u[free_position]) == pytest.approx(0.5, abs=0.02)
    assert np.mean(u[free_position] < 0.3) == pytest.approx(0.3, abs=0.03)


def test_images_are_rendered_for_their_captions(captioned) -> None:
    i = next(k for k, p in enumerate(captioned.prompts) if parse_caption(p).position)
    parts = parse_caption(captioned.prompts[i])
    expected = world.render(
        parts.shape,
        parts.color,
        parts.background,
        float(captioned.size[i]),
        float(captioned.cx[i]),
        float(captioned.cy[i]),
    )
    torch.testing.assert_close(captioned.images[i], expected)


def test_same_seed_same_captions() -> None:
    a = sample_captions(50, np.random.default_rng(4))
    b = sample_captions(50, np.random.default_rng(4))
    assert a == b and a != sample_captions(50, np.random.default_rng(5))
