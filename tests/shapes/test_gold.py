"""The gold reward: formulas in closed form, and pixels against the generator's truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nulltta.rewards import get_reward
from nulltta.shapes.captions import sample_captioned_batch
from nulltta.shapes.gold import (
    D_MAX,
    centring,
    coverage,
    gold_from_geometry,
    gold_score,
    measure,
    ramp,
    shape_constants,
    size_term,
)
from nulltta.shapes.world import BACKGROUND_RGB, COLOR_RGB, SHAPES, make_prompt, render

from .conftest import spearman


def test_size_term_closed_form() -> None:
    s = torch.tensor([0.2, 0.30, 0.525, 0.75, 0.85, 0.95, 1.0])
    expected = torch.tensor([0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    torch.testing.assert_close(size_term(s), expected, atol=1e-6, rtol=0)
    assert size_term(np.array([0.6]))[0] == pytest.approx(0.3 / 0.45)


def test_centring_closed_form() -> None:
    assert D_MAX == pytest.approx(math.hypot(0.32, 0.32))
    assert centring(0.5, 0.5) == pytest.approx(1.0)
    assert centring(0.5 + 0.32, 0.5 + 0.32) == pytest.approx(0.0, abs=1e-12)
    assert centring(0.5 + 0.16, 0.5 - 0.16) == pytest.approx(0.5)
    assert centring(0.0, 0.0) == 0.0
    assert gold_from_geometry(0.75, 0.5, 0.5) == pytest.approx(1.0)


def test_coverage_and_ramp_closed_form() -> None:
    fg, bg = torch.tensor([[0.9, 0.1, 0.1]]), torch.tensor([[0.1, 0.1, 0.9]])
    weights = torch.tensor([0.0, 0.05, 0.25, 0.5, 0.9, 1.0])
    pixels = weights[:, None] * fg + (1 - weights[:, None]) * bg  # (6, 3) mixtures
    images = pixels.T.reshape(1, 3, 1, 6)
    m = coverage(images, fg, bg)[0, 0]
    torch.testing.assert_close(m, weights)
    torch.testing.assert_close(ramp(m), torch.tensor([0.0, 0.0, 0.1875, 0.5, 1.0, 1.0]))
    beyond = coverage(torch.ones(1, 3, 1, 1), torch.tensor([[0.5, 0.5, 0.5]]), bg)
    assert float(beyond) == 1.0  # clipped


def test_shape_constants_match_the_shapes_geometry() -> None:
    k = {name: shape_constants()[name][0] for name in SHAPES}
    assert k["circle"] == pytest.approx(math.pi / 4, rel=0.01)
    assert k["square"] == pytest.approx(0.886**2, rel=0.01)
    assert k["triangle"] == pytest.approx(0.866 / 2, rel=0.01)
    assert k["cross"] == pytest.approx(2 / 3 - 1 / 9, rel=0.01)
    assert shape_constants()["triangle"][1] == pytest.approx(0.866 / 6, rel=0.01)
    assert shape_constants()["circle"][1] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_measure_recovers_size_and_box_centre(shape: str) -> None:
    image = render(shape, "yellow", "brown", size=0.45, cx=0.35, cy=0.62)[None]
    m = measure(image, [make_prompt(shape, "yellow", "brown")])
    assert float(m.size) == pytest.approx(0.45, abs=0.01)
    assert float(m.cx) == pytest.approx(0.35, abs=0.005)
    assert float(m.cy) == pytest.approx(0.62, abs=0.005)


def test_gold_from_pixels_ranks_like_the_formula_on_true_geometry(clean_batch) -> None:
    images, prompts = clean_batch.images[:300], clean_batch.prompts[:300]
    gold = gold_score(images, prompts)
    truth = gold_from_geometry(clean_batch.size[:300], clean_batch.cx[:300], clean_batch.cy[:300])
    assert spearman(gold, truth) >= 0.98
    assert (gold - truth).abs().max() < 0.03  # the gate is open on clean matching images


def test_gold_on_captioned_images_ranks_like_the_formula() -> None:
    batch = sample_captioned_batch(200, seed=8)
    gold = gold_score(batch.images, batch.prompts)  # the captions' optional words are read
    assert spearman(gold, gold_from_geometry(batch.size, batch.cx, batch.cy)) >= 0.98


def test_gate_is_zero_for_a_mismatched_prompt(clean_batch) -> None:
    images, prompts = clean_batch.images[:100], clean_batch.prompts[:100]
    shifted = prompts[1:] + prompts[:1]
    wrong = torch.tensor([p != q for p, q in zip(prompts, shifted, strict=True)])
    gold = gold_score(images, shifted)
    assert wrong.sum() > 90 and (gold[wrong] == 0).all()


def test_gate_is_zero_below_two_percent_area() -> None:
    blank = torch.tensor(BACKGROUND_RGB["gray"]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    faint = render("circle", "red", "gray", size=0.3, cx=0.5, cy=0.5)[None]
    assert float(gold_score(blank.contiguous(), ["a red circle on a gray background"])) == 0.0
    assert float(gold_score(faint, ["a red circle on a gray background"])) > 0
    haze = 0.05 * torch.tensor(COLOR_RGB["red"]).view(3, 1, 1) + 0.95 * blank[0]
    assert float(gold_score(haze[None], ["a red circle on a gray background"])) == 0.0
    # A circle of extent 0.15 covers pi / 4 * 0.15^2 = 1.8% of the image.
    tiny = render("circle", "red", "gray", size=0.15, cx=0.5, cy=0.5)[None]
    assert float(measure(tiny, ["a red circle on a gray background"]).area) < 0.02
    assert float(gold_score(tiny, ["a red circle on a gray background"])) == 0.0


def test_gold_is_a_registered_non_differentiable_prompt_reward() -> None:
    reward = get_reward("shapes-gold")
    assert not reward.is_differentiable and reward.requires_prompts
    image = render("square", "green", "white", size=0.7, cx=0.5, cy=0.5)[None]
    score = reward(image, "a green square on a white background")
    assert float(score) == pytest.approx(float(gold_from_geometry(0.7, 0.5, 0.5)), abs=0.02)
    assert float(reward(image, "a blue square on a white background")) == 0.0


def test_measure_keeping_the_gradient_gives_the_same_values_and_its_derivative() -> None:
    prompt = "a red circle on a gray background"
    image = render("circle", "red", "gray", size=0.45, cx=0.4, cy=0.55)[None].double()
    background = torch.tensor(BACKGROUND_RGB["gray"], dtype=torch.float64).view(1, 3, 1, 1)
    soft = 0.6 * image + 0.4 * background  # coverage inside the ramp, so every edge has a slope
    plain, kept = measure(soft, [prompt]), measure(soft, [prompt], keep_gradient=True)
    for name in ("area", "size", "cx", "cy"):
        assert torch.equal(getattr(plain, name), getattr(kept, name).detach())

    def centre_x(x: torch.Tensor) -> torch.Tensor:
        return measure(x, [prompt], keep_gradient=True).cx.sum()

    x = soft.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(centre_x(x), x)
    direction = torch.randn(soft.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    h = 1e-3  # measure works in float32
    numeric = (centre_x(soft + h * direction) - centre_x(soft - h * direction)) / (2 * h)
    assert float((grad * direction).sum()) == pytest.approx(float(numeric), rel=1e-2)


def test_an_empty_segmentation_has_size_zero_and_a_finite_gradient() -> None:
    blank = torch.tensor(BACKGROUND_RGB["gray"]).view(1, 3, 1, 1).expand(1, 3, 32, 32).clone()
    blank.requires_grad_(True)
    m = measure(blank, ["a red circle on a gray background"], keep_gradient=True)
    assert float(m.size) == 0.0
    (grad,) = torch.autograd.grad(m.size.sum() + m.cx.sum(), blank)
    assert torch.isfinite(grad).all()
