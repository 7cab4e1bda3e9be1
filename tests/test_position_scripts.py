"""The position diagnosis and caption-fidelity scripts compute what they claim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def diagnosis(load_benchmark):
    return load_benchmark("position_diagnosis")


@pytest.fixture(scope="module")
def caption_fidelity(load_benchmark):
    return load_benchmark("caption_fidelity")


@pytest.mark.parametrize(
    ("axis", "share", "other"),
    [(2, "seed_share", "phrase_share"), (1, "phrase_share", "seed_share")],
)
def test_a_centre_set_by_one_factor_alone_is_all_that_factors_share(diagnosis, axis, share, other):
    # centres: (prompts, phrases, seeds, 2); an offset that varies along one axis only.
    size = [1, 1, 1, 2]
    size[axis] = (3, 6, 5)[axis]
    offsets = np.random.default_rng(axis).normal(size=size)
    shares = diagnosis.variance_shares(np.broadcast_to(0.5 + offsets, (3, 6, 5, 2)))
    assert shares[share] == pytest.approx(1.0)
    assert shares[other] == pytest.approx(0.0, abs=1e-12)


def test_additive_seed_and_phrase_effects_split_the_variance_exactly(diagnosis):
    rng = np.random.default_rng(2)
    seed_effect = rng.normal(size=(1, 1, 5, 2))
    phrase_effect = rng.normal(size=(1, 6, 1, 2))
    centres = seed_effect - seed_effect.mean(2, keepdims=True)
    centres = centres + phrase_effect - phrase_effect.mean(1, keepdims=True)
    centres = np.broadcast_to(centres, (2, 6, 5, 2))
    shares = diagnosis.variance_shares(centres)
    assert shares["seed_share"] + shares["phrase_share"] == pytest.approx(1.0)
    seed_ss = 6 * (seed_effect - seed_effect.mean(2, keepdims=True)) ** 2
    assert shares["seed_share"] == pytest.approx(seed_ss.sum() * 2 / (centres**2).sum())


def test_the_breakdown_counts_hits_per_attribute_and_per_word(caption_fidelity):
    captions = [
        "a small red circle in the top left on a white background",
        "a large red circle in the top left on a white background",
        "a small blue cross in the centre on a black background",
        "a large blue cross in the centre on a black background",
    ]
    hits = torch.tensor(
        [[True, False, True, True], [True, True, True, False], [True, True, False, True]]
    )
    out = caption_fidelity.breakdown(hits, captions)
    assert out["overall"] == {
        "shape": 0.75, "colour": 0.75, "background": 0.75, "all_three": 0.25, "n": 4
    }  # fmt: skip
    assert out["small"]["all_three"] == 0.5 and out["small"]["n"] == 2
    assert out["large"]["shape"] == 0.5 and out["large"]["colour"] == 0.5
    assert out["in the centre"]["background"] == 0.5
    assert out["in the top left"]["all_three"] == 0.5
    assert out["in the top left"]["shape"] == 0.5 and out["in the top left"]["colour"] == 1.0


def test_a_report_after_a_settings_subset_covers_every_setting_that_ran(tmp_path, load_benchmark):
    # tune_defaults --settings runs a subset; its report must still include
    # greedy and the earlier settings (it used to fail on the missing greedy).
    tune = load_benchmark("tune_defaults")
    committed = BENCHMARKS / "results" / "defaults" / "rows.jsonl"
    (tmp_path / "rows.jsonl").write_text(committed.read_text())
    tune.main(["--out", str(tmp_path), "--report-only", "--settings", "kl=0.002 constant lr=0.01"])
    table = (tmp_path / "defaults.md").read_text()
    assert "| greedy |" in table
    assert table == (BENCHMARKS / "results" / "defaults" / "defaults.md").read_text()
