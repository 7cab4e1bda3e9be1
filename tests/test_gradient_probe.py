"""Part H of the levers follow-up: what each reward asks of each step's Tweedie estimate.

`benchmarks/gradient_probe.py` measures; `benchmarks/gradient_probe_report.py` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nulltta.loading import embedded_model_available
from nulltta.shapes.gold import D_MAX, measure
from nulltta.shapes.world import make_prompt, render

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "gradient_probe"


def _image(size: float, cx: float, cy: float) -> tuple[torch.Tensor, list[str]]:
    return render("circle", "red", "white", size=size, cx=cx, cy=cy)[None], [
        make_prompt("circle", "red", "white")
    ]


def _centre(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    geometry = measure(images, prompts)
    return torch.stack([geometry.cx, geometry.cy], 1)


def test_the_move_toward_the_centre_translates_the_shape_by_epsilon(load_benchmark):
    probe = load_benchmark("gradient_probe")
    images, prompts = _image(0.4, 0.3, 0.65)
    centre = _centre(images, prompts)
    moved = probe.toward_centre(images, centre, torch.tensor([0.1]))
    unit = (0.5 - centre) / (0.5 - centre).norm()
    torch.testing.assert_close(_centre(moved, prompts), centre + 0.1 * unit, atol=4e-3, rtol=0)
    # Zero moves nothing (the resampling is exact at pixel centres).
    torch.testing.assert_close(probe.toward_centre(images, centre, torch.zeros(1)), images)


def test_growth_scales_the_shape_about_its_centre(load_benchmark):
    probe = load_benchmark("gradient_probe")
    images, prompts = _image(0.4, 0.4, 0.55)
    centre = _centre(images, prompts)
    grown = probe.grow(images, centre, torch.tensor([0.25]))
    before, after = measure(images, prompts), measure(grown, prompts)
    assert float(after.size / before.size) == pytest.approx(1.25, abs=0.02)
    torch.testing.assert_close(_centre(grown, prompts), centre, atol=4e-3, rtol=0)


@pytest.mark.parametrize(
    ("size", "cx", "cy"), [(0.45, 0.32, 0.62), (0.35, 0.7, 0.3), (0.6, 0.45, 0.6)]
)
def test_the_oracle_asks_for_golds_balance_of_centring_and_size(load_benchmark, size, cx, cy):
    # gold = 0.5 size_term + 0.5 centring: moving the centre toward the image centre by e
    # raises centring by e / D_MAX, and growing by (1 + e) raises s by s e, the size term by
    # s e / 0.45. On a crisp render gold's ramp saturates inside the shape, so its gradient
    # sees about half of either finite slope; the balance of the two is gold's.
    probe = load_benchmark("gradient_probe")
    oracle = load_benchmark("null_oracle")
    images, prompts = _image(size, cx, cy)
    measured = float(measure(images, prompts).size)
    d_c, d_s, distance = probe.directional_derivatives(images, prompts, oracle.oracle_score)
    assert float(distance) > probe.CENTRED
    assert float(d_c) > 0 and float(d_s) > 0
    closed_form = (0.5 / D_MAX) / (0.5 * measured / 0.45)
    assert float(d_c / d_s) == pytest.approx(closed_form, rel=0.1)


def test_a_centred_shape_has_no_direction_toward_the_centre(load_benchmark):
    probe = load_benchmark("gradient_probe")
    oracle = load_benchmark("null_oracle")
    images, prompts = _image(0.45, 0.51, 0.5)
    d_c, d_s, distance = probe.directional_derivatives(images, prompts, oracle.oracle_score)
    assert float(distance) < probe.CENTRED
    assert torch.isnan(d_c).all() and torch.isfinite(d_s).all()


def _steps(final: float, deciding: list[float]) -> dict:
    steps = {
        str(i): {"target": {"asks_centre": share}, "to_final": 0.1}
        for i, share in enumerate(deciding)
    }
    steps[str(len(deciding))] = {"target": {"asks_centre": 0.1}, "to_final": 0.01}
    steps["final"] = {"target": {"asks_centre": final}, "to_final": 0.0}
    return steps


@pytest.mark.parametrize(
    ("final", "deciding", "verdict"),
    [
        (0.9, [0.5, 0.9], "parts from gold's on the noisy steps"),
        (0.7, [0.9, 0.9], "does not ask for centring on final images"),
        (0.9, [0.85, 0.8], "asks for centring at the deciding steps too"),
    ],
)
def test_the_reading_gives_each_verdict(load_benchmark, final, deciding, verdict):
    report = load_benchmark("gradient_probe_report")
    reading = report.probe_reading(_steps(final, deciding), "target")
    assert verdict in reading["verdict"]
    # The last step before "final" is near the final centre: not a deciding step.
    assert reading["deciding_steps"] == [str(i) for i in range(len(deciding))]


def test_the_summary_counts_and_balances_by_hand(load_benchmark):
    report = load_benchmark("gradient_probe_report")
    rows = [
        {"prompt": "p", "seed": s, "step": 0, "reward": "target", "d_c": d_c, "d_s": d_s,
         "distance": 0.2, "to_final": t, "size": 0.5}
        for s, (d_c, d_s, t) in enumerate([(1.0, 1.0, 0.1), (-1.0, 3.0, 0.3), (None, 2.0, 0.2)])
    ]  # fmt: skip
    entry = report.summarise(rows)["steps"]["0"]
    assert entry["target"]["centred"] == 1
    assert entry["target"]["asks_centre"] == 0.5  # of the two with a direction
    assert entry["target"]["asks_growth"] == 1.0
    assert entry["target"]["balance"] == pytest.approx((0.5 + -0.25) / 2)  # median of two
    assert entry["to_final"] == pytest.approx(0.2)


def test_the_probe_report_is_its_rows(load_benchmark):
    from nulltta.jsonl import read_rows

    report = load_benchmark("gradient_probe_report")
    summary = report.summarise(read_rows(RESULTS / "rows.jsonl"))
    assert report.markdown(summary) == (RESULTS / "probe.md").read_text()
    assert summary == json.loads((RESULTS / "probe.json").read_text())


@pytest.mark.skipif(not embedded_model_available(), reason="no embedded model")
@pytest.mark.parametrize(("sub_steps", "name"), [(1, "rows.jsonl"), (2, "rows_lookahead2.jsonl")])
def test_the_probe_runs_on_the_embedded_model_as_committed(load_benchmark, sub_steps, name):
    # Two of the 48 pairs, alone and on one thread: the committed rows ran all 48 at once.
    from levers_setup import table_world

    probe = load_benchmark("gradient_probe")
    committed = {
        (r["prompt"], r["seed"], str(r["step"]), r["reward"]): r
        for r in map(json.loads, (RESULTS / name).read_text().splitlines())
    }
    pipe, _, pairs = table_world(1, 1)
    rows = probe.probe_rows(pipe, pairs[:2], sub_steps)
    assert len(rows) == 2 * 21 * 3
    for row in rows:
        twin = committed[(row["prompt"], row["seed"], str(row["step"]), row["reward"])]
        assert row["to_final"] == pytest.approx(twin["to_final"], abs=1e-4)
        assert row["d_s"] == pytest.approx(twin["d_s"], rel=1e-3, abs=1e-4)


def test_lookahead_timesteps_are_evenly_spaced_to_zero(load_benchmark):
    probe = load_benchmark("gradient_probe")
    assert probe.lookahead_timesteps(999, 1) == [999]
    assert probe.lookahead_timesteps(999, 2) == [999, 500]
    assert probe.lookahead_timesteps(800, 4) == [800, 600, 400, 200]


@pytest.mark.parametrize("sub_steps", [1, 2, 4])
def test_lookahead_with_the_true_noise_returns_the_clean_latent(load_benchmark, sub_steps):
    # x_t = s x0 + n eps: a predictor that knows eps makes every DDIM (eta = 0) sub-step
    # exact, so any number of sub-steps lands on x0; one sub-step is Tweedie's formula.
    probe = load_benchmark("gradient_probe")
    alphas_cumprod = torch.linspace(0.9999, 0.005, 1000, dtype=torch.float64)
    x0, eps = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    abar = float(alphas_cumprod[900])
    latents = abar**0.5 * x0 + (1 - abar) ** 0.5 * eps
    seen = []

    def predict(x, t):
        seen.append(t)
        return eps

    out = probe.lookahead_x0(latents, 900, sub_steps, predict, alphas_cumprod)
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=1e-4)
    assert seen == probe.lookahead_timesteps(900, sub_steps)


def test_the_lookahead_reading_gives_each_verdict(load_benchmark):
    report = load_benchmark("gradient_probe_report")
    one_step = {"steps": _steps(0.9, [0.5, 0.5, 0.5])}

    def ahead(shares):
        return {"steps": _steps(0.9, shares)}

    every = report.lookahead_reading(one_step, {2: ahead([0.5, 0.9, 0.5]), 4: ahead([0.8] * 3)})
    assert every["deciding_steps"] == ["0", "1", "2"]
    assert every["sub_steps"][4]["deciding_steps_asking"] == ["0", "1", "2"]
    assert "every deciding step" in every["verdict"]
    most = report.lookahead_reading(one_step, {2: ahead([0.9, 0.9, 0.5])})
    assert "partial" in most["verdict"]
    half = report.lookahead_reading(one_step, {2: ahead([0.9, 0.5, 0.5, 0.5][:3])})
    assert "not the cause" in half["verdict"]


def test_the_lookahead_report_is_its_rows(load_benchmark):
    from nulltta.jsonl import read_rows

    report = load_benchmark("gradient_probe_report")
    one_step = report.summarise(read_rows(RESULTS / "rows.jsonl"))
    ahead = {k: report.summarise(read_rows(RESULTS / f"rows_lookahead{k}.jsonl")) for k in (2, 4)}
    reading = report.lookahead_reading(one_step, ahead)
    assert (
        report.lookahead_markdown(one_step, ahead, reading)
        == (RESULTS / "lookahead.md").read_text()
    )
    record = json.loads((RESULTS / "lookahead.json").read_text())
    assert record["reading"] == json.loads(json.dumps(reading))
