"""DNO's probability regulariser against its closed form (Tang et al. 2024, eq. of Sec. 5).

For ``n`` blocks of ``d`` entries with mean ``m`` and second moment
``C = X^T X / n``, DNO's penalty is ``-(log p_mean + log p_cov)`` with
``log p_mean = min(-n ||m||^2 / (2 d), -log 2)`` and
``log p_cov = min(-n (max(sqrt(1 + ||C - I||_2) - 1 - sqrt(d / n), 0))^2 / 2, -log 2)``,
computed on the blocks in order plus the mean over random permutations.
"""

from __future__ import annotations

import math

import pytest
import torch

from nulltta.bench.dno import probability_regularizer


def _closed_form(n: int, d: int, squared_norm: float) -> float:
    # Every block equal to v: m = v and C = v v^T, whose eigenvalues minus 1 are
    # |v|^2 - 1 (once) and -1 (d - 1 times).
    log_p_mean = min(-n * squared_norm / (2 * d), -math.log(2))
    spectral = max(abs(squared_norm - 1), 1.0)
    excess = max(math.sqrt(1 + spectral) - 1 - math.sqrt(d / n), 0.0)
    log_p_cov = min(-n * excess**2 / 2, -math.log(2))
    return -(log_p_mean + log_p_cov)


@pytest.mark.parametrize("scale", [0.01, 0.5, 1.0, 3.0])
def test_regularizer_of_identical_blocks_matches_the_closed_form(scale):
    n, d = 64, 4
    v = scale * torch.tensor([1.0, -2.0, 0.5, 1.5], dtype=torch.float64)
    noises = v.repeat(n).view(4, 4, 4, 4)  # any shape: the regulariser flattens
    expected = _closed_form(n, d, float(v.pow(2).sum()))
    assert float(probability_regularizer(noises, d, 0)) == pytest.approx(expected, rel=1e-9)


def test_shuffled_terms_are_averaged_and_added_to_the_ordered_one():
    # Identical blocks are a permutation-invariant case only if all entries are
    # equal: then every shuffle gives the ordered value and the sum doubles it.
    noises = torch.full((8, 4, 2, 2), 0.7, dtype=torch.float64)
    ordered = float(probability_regularizer(noises, 4, 0))
    both = float(probability_regularizer(noises, 4, 5, torch.Generator().manual_seed(0)))
    assert both == pytest.approx(2 * ordered)


def test_regularizer_reaches_every_noise_vector():
    # DNO with eta > 0 regularises x_T and every step's noise together.
    noises = (3 * torch.randn(5, 4, 4, 4)).requires_grad_(True)
    probability_regularizer(noises, 4, 2, torch.Generator().manual_seed(0)).backward()
    assert all(float(g.abs().sum()) > 0 for g in noises.grad)
