"""The obedience judge on rendered images whose geometry is known."""

from __future__ import annotations

import pytest
import torch

from nulltta.shapes.captions import sample_captioned_batch
from nulltta.shapes.obedience import obedience, obeys_position, obeys_size
from nulltta.shapes.world import make_caption, render


def test_thresholds() -> None:
    assert obeys_size("small", 0.49) and not obeys_size("small", 0.51)
    assert obeys_size("large", 0.56) and not obeys_size("large", 0.54)
    assert obeys_position("in the centre", 0.59, 0.41)
    assert not obeys_position("in the centre", 0.61, 0.5)
    assert obeys_position("in the top left", 0.4, 0.3)  # y points down
    assert not obeys_position("in the top left", 0.4, 0.6)
    assert obeys_position("in the bottom right", 0.6, 0.7)
    with pytest.raises(ValueError, match="size word"):
        obeys_size("huge", 0.5)


def test_rendered_geometry_is_judged_as_drawn() -> None:
    cases = [
        ("small", "in the top left", 0.35, 0.25, 0.3, [True, True]),
        ("large", "in the bottom right", 0.7, 0.55, 0.56, [True, True]),
        ("small", "in the centre", 0.6, 0.5, 0.5, [False, True]),
        ("large", "in the top right", 0.7, 0.45, 0.45, [True, False]),
    ]
    images = torch.stack(
        [render("triangle", "blue", "white", s, cx, cy) for _, _, s, cx, cy, _ in cases]
    )
    captions = [make_caption("triangle", "blue", "white", w, p) for w, p, *_ in cases]
    judged = obedience(images, captions)
    for (size, position, *_, expected), row in zip(cases, judged, strict=True):
        assert row == {size: expected[0], position: expected[1]}


def test_training_captions_are_obeyed_by_their_own_images() -> None:
    # The world draws every image inside its caption's ranges, which lie
    # inside the judge's thresholds: the judge must accept all of them.
    batch = sample_captioned_batch(300, seed=21)
    judged = obedience(batch.images, batch.prompts)
    assert sum(len(row) for row in judged) > 200
    assert all(all(row.values()) for row in judged)
    assert obedience(batch.images[:1], ["a red circle on a white background"]) == [{}]
