"""The inner-step order experiment's scripts compute what they claim."""

from __future__ import annotations

import statistics

import pytest
import torch

from nulltta.shapes.captions import sample_captioned_batch
from nulltta.shapes.gold import gold_score


def test_gold_terms_recombine_into_the_gold_reward(load_benchmark):
    tune = load_benchmark("tune_defaults")
    batch = sample_captioned_batch(24, seed=3)
    prompts = list(batch.prompts)
    prompts[:4] = prompts[4:8]  # some mismatched prompts, so the gate closes on them
    terms = tune.gold_terms(batch.images, prompts)
    recombined = torch.tensor([t["gate"] * (0.5 * t["size_term"] + 0.5 * t["centring"])
                               for t in terms])  # fmt: skip
    torch.testing.assert_close(recombined, gold_score(batch.images, prompts).float())
    assert {t["gate"] for t in terms} == {0.0, 1.0}


def _row(setting: str, seed: int, centring: float) -> dict:
    scores = {"size_term": 0.5, "gate": 1.0, "shapes-gold": 0.5, "target": 0.3, "fidelity": 1.0}
    return {"setting": setting, "prompt": "p", "seed": seed, "centring": centring, **scores}


@pytest.mark.parametrize(
    ("down", "expected"),
    [([0.9, 0.8, 0.9], "supported"), ([0.5, 0.7, 0.4], "refuted"), ([0.1, 0.1, 0.2], "refuted")],
)
def test_paired_differences_and_the_stated_reading(load_benchmark, down, expected):
    order = load_benchmark("schedule_order")
    up = [0.5, 0.6, 0.4]
    rows = [_row(order.PRIMARY, s, c) for s, c in enumerate(up)]
    rows += [_row(order.PRIMARY + " ramp_down", s, c) for s, c in enumerate(down)]
    rows += [_row("greedy", 0, 0.0)]  # no twin: not compared
    differences = order.paired_differences(rows)
    assert list(differences) == [order.PRIMARY]
    centring = differences[order.PRIMARY]["centring"]
    deltas = [d - u for d, u in zip(down, up, strict=True)]
    assert centring["delta"] == pytest.approx(statistics.fmean(deltas))
    assert centring["se"] == pytest.approx(statistics.stdev(deltas) / 3**0.5)
    assert centring["ramp_up"] == pytest.approx(statistics.fmean(up))
    assert differences[order.PRIMARY]["size_term"]["delta"] == 0
    assert order.verdict(differences).startswith(expected)
    assert order.verdict({}).startswith("not decided")


def test_inner_gains_are_the_rise_from_first_to_last_inner_step(load_benchmark):
    order = load_benchmark("schedule_order")

    def step(*rewards):
        return {"inner": [{"reward": r} for r in rewards]}

    histories = [
        [step(0.1, 0.2, 0.4), step(0.5), step()],
        [step(0.2, 0.2, 0.3), step(0.6), step()],
    ]
    gains = order.inner_gains(histories, 3)
    assert [g["step"] for g in gains] == [0]  # steps with under 2 inner steps are left out
    assert gains[0]["inner_steps"] == 3
    assert gains[0]["rise"] == pytest.approx(0.2)
    assert gains[0]["se"] == pytest.approx(statistics.stdev([0.3, 0.1]) / 2**0.5)
    table = order.gains_markdown({"ramp_up": gains, "ramp_down": []})
    assert "| 0 | 3 | +0.2000 ± 0.1000 |  |  |" in table
