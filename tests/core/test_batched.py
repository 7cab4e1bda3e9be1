"""A batch of B trajectories equals B single runs.

On the embedded model (trained weights, so every coordinate of phi' has a real
gradient). In float64 the kernels' rounding, which differs between batch B
and batch 1, is far below float32's: there latents and phi' agree within
1e-5 and every greedy choice is the same, which tests the batching itself
(block-diagonal objective, per-trajectory Adam, generators and candidates).
In float32, the difference that rounding leaves is measured too (a few 1e-5
after a short run).
"""

from __future__ import annotations

import pytest
import torch

from nulltta import NullTextAligner

PROMPTS = [
    "a red circle on a white background",
    "a blue square on a black background",
    "a red circle on a white background",
]
SEEDS = [0, 1, 5]


def _close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-5)


@pytest.fixture(scope="module")
def embedded_pipe64():
    from nulltta.shapes.model import load_embedded_pipeline

    return load_embedded_pipeline(dtype=torch.float64)


@pytest.mark.parametrize(
    "settings",
    [
        {"reward": "brightness", "num_candidates": 3},
        {"reward": "contrast", "gradient": "zeroth_order", "num_candidates": 2},
    ],
    ids=["backprop-greedy", "zeroth-order"],
)
def test_a_batch_equals_the_same_trajectories_run_one_by_one(embedded_pipe64, settings):
    schedule = dict(num_inference_steps=6, n_min=1, n_max=3, schedule_rate=0.3)
    batch = NullTextAligner(embedded_pipe64, batch_size=3, **schedule, **settings)
    batch.fit(PROMPTS, seeds=SEEDS)
    for index, (prompt, seed) in enumerate(zip(PROMPTS, SEEDS, strict=True)):
        alone = NullTextAligner(embedded_pipe64, seed=seed, **schedule, **settings).fit(prompt)
        _close(batch.all_latents_[index], alone.latents_[0])
        _close(batch.phis_[index], alone.phi_)
        assert batch.rewards_[index] == pytest.approx(alone.reward_, abs=1e-5)
        choices = batch.histories_[index][:, "selected_candidate"]
        assert choices == alone.history_[:, "selected_candidate"]
    # Two trajectories of the same prompt with different seeds really differ.
    assert not torch.allclose(batch.all_latents_[0], batch.all_latents_[2])


def test_in_float32_batches_of_any_size_agree_to_rounding(embedded_pipe):
    schedule = dict(num_inference_steps=5, n_min=1, n_max=2, reward="brightness")
    by_two = NullTextAligner(embedded_pipe, batch_size=2, **schedule).fit(PROMPTS, seeds=SEEDS)
    by_three = NullTextAligner(embedded_pipe, batch_size=3, **schedule).fit(PROMPTS, seeds=SEEDS)
    _close(by_two.all_latents_, by_three.all_latents_, atol=1e-4)
    for first, second in zip(by_two.histories_, by_three.histories_, strict=True):
        assert first[:, "selected_candidate"] == second[:, "selected_candidate"]
    assert by_two.prompts_ == PROMPTS and by_two.seeds_ == SEEDS
    assert len(by_two.images_) == len(by_two.histories_) == len(by_two.rewards_) == 3
    assert not hasattr(by_two, "image_")  # a list fit sets the plural attributes only


def test_seeds_must_match_the_prompts(embedded_pipe):
    aligner = NullTextAligner(embedded_pipe, "brightness")
    with pytest.raises(ValueError, match="one seed per prompt"):
        aligner.fit(PROMPTS, seeds=[0])
    with pytest.raises(ValueError, match="seeds is for several prompts"):
        aligner.fit(PROMPTS[0], seeds=[0])
    with pytest.raises(ValueError, match="batch_size"):
        NullTextAligner(embedded_pipe, "brightness", batch_size=0).fit(PROMPTS)
