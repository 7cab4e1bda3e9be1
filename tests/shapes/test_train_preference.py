"""The proxies' training data (simulated choices) and their Bradley-Terry training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from nulltta.shapes.preference import CalibratedPreference, TwoTowerPreference
from nulltta.shapes.train_preference import (
    MATCH_PROB,
    RATER_TEMPERATURE,
    calibrate,
    make_pairs,
    pairwise_accuracy,
    train_bradley_terry,
)


@pytest.fixture(scope="module")
def pairs():
    return make_pairs(400, seed=5, chunk=400)


def test_pairs_are_fixed_by_their_seed(pairs) -> None:
    again = make_pairs(400, seed=5, chunk=400)
    assert torch.equal(pairs.images_a, again.images_a) and torch.equal(pairs.labels, again.labels)
    assert torch.equal(pairs.a_wins, again.a_wins)
    other = make_pairs(50, seed=6, chunk=50)
    assert not torch.equal(pairs.images_a[:50], other.images_a)


def test_pairs_follow_the_design(pairs) -> None:
    assert len(pairs) == 400
    assert (pairs.gold_a != pairs.gold_b).all()  # equal-gold pairs are dropped
    # An image rendered for another prompt has gold 0 (the gate); kept pairs
    # lose the both-mismatched ones: P(matched | kept) = 0.7 / (1 - 0.3^2).
    matched = torch.cat([pairs.gold_a, pairs.gold_b]) > 0
    expected = MATCH_PROB / (1 - (1 - MATCH_PROB) ** 2)
    assert float(matched.float().mean()) == pytest.approx(expected, abs=0.05)


def test_rater_noise_has_the_stated_temperature(pairs) -> None:
    diff = pairs.gold_a - pairs.gold_b
    agrees = ((diff > 0).float() == pairs.a_wins).float().mean()
    expected = torch.sigmoid(diff.abs() / RATER_TEMPERATURE).mean()
    assert float(agrees) == pytest.approx(float(expected), abs=0.06)
    assert float(agrees) < 0.98  # noisy: some choices go against gold
    clean = make_pairs(200, seed=5, noisy=False, chunk=200)
    assert torch.equal(clean.a_wins, (clean.gold_a > clean.gold_b).float())


class _MeanBrightness(CalibratedPreference):
    """A network-free score, so the calibration can be checked in closed form."""

    sign = 1.0

    def raw(self, images: Tensor, labels: Tensor) -> Tensor:
        return self.sign * (images.mean((1, 2, 3)) * 3.0 - 1.0)


def test_calibration_is_the_least_squares_fit(pairs) -> None:
    model = _MeanBrightness()
    raw = model.raw(torch.cat([pairs.images_a, pairs.images_b]), pairs.labels).double().numpy()
    gold = torch.cat([pairs.gold_a, pairs.gold_b]).double().numpy()
    scale, bias = np.polyfit(raw, gold, 1)
    model.sign = float(np.sign(scale))  # a score that ranks with gold on these pairs
    raw, scale = raw * model.sign, scale * model.sign
    info = calibrate(model, pairs)
    assert info["scale"] == pytest.approx(scale, rel=1e-6)
    assert float(model.bias) == pytest.approx(bias, rel=1e-5, abs=1e-6)
    fitted = model(pairs.images_a[:5], pairs.labels[:5])
    torch.testing.assert_close(
        fitted, torch.from_numpy((scale * raw[:5] + bias).astype(np.float32))
    )


def test_bradley_terry_training_learns_from_the_choices(pairs) -> None:
    torch.manual_seed(0)
    model = TwoTowerPreference()
    before = pairwise_accuracy(model, pairs)
    train_bradley_terry(model, pairs, epochs=3, batch_size=50, seed=1)
    after = pairwise_accuracy(model, pairs)
    assert after > max(before, 0.6) + 0.05
    assert not model.training
