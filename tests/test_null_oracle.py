"""Part G of the levers follow-up: Null-TTA against gold's own ungated terms."""

from __future__ import annotations

import pytest
import torch

from nulltta.loading import embedded_model_available
from nulltta.shapes.gold import gold_score
from nulltta.shapes.world import make_prompt, render

needs_embedded = pytest.mark.skipif(not embedded_model_available(), reason="no embedded model")


def _clean(shape: str, size: float, cx: float, cy: float) -> tuple[torch.Tensor, str]:
    return render(shape, "red", "white", size=size, cx=cx, cy=cy)[None], make_prompt(
        shape, "red", "white"
    )


def test_the_oracle_is_gold_where_the_gate_passes_and_ungated_where_it_does_not(load_benchmark):
    oracle = load_benchmark("null_oracle")
    geometry = [("circle", 0.5, 0.5, 0.5), ("square", 0.35, 0.3, 0.7), ("cross", 0.7, 0.6, 0.4)]
    images, prompts = zip(*(_clean(*g) for g in geometry), strict=True)
    images = torch.cat(images)
    torch.testing.assert_close(
        oracle.oracle_score(images, list(prompts)), gold_score(images, list(prompts))
    )
    # Another shape in the prompt: the gate fails; the oracle segments by the same colours.
    wrong = [make_prompt("triangle", "red", "white")] * 3
    assert (gold_score(images, wrong) == 0).all()
    assert (oracle.oracle_score(images, wrong) > 0.2).all()


def test_the_oracle_reward_is_differentiable_and_rises_toward_the_centre(load_benchmark):
    oracle = load_benchmark("null_oracle")
    reward = oracle.oracle_reward()
    assert reward.is_differentiable and reward.requires_prompts
    off, prompt = _clean("circle", 0.5, 0.35, 0.5)
    centred, _ = _clean("circle", 0.5, 0.5, 0.5)
    soft = (0.5 * off + 0.5 * centred).requires_grad_(True)  # edges on both sides, in the ramp
    (grad,) = torch.autograd.grad(reward.score(soft, [prompt]).sum(), soft)
    # Moving along (centred - off) moves the shape's mass toward the centre.
    assert float((grad * (centred - off)).sum()) > 0


def test_the_soft_gate_is_the_classifiers_probability_of_the_prompt(load_benchmark):
    from nulltta.shapes.rewards import ShapesFidelity

    oracle = load_benchmark("null_oracle")
    image, prompt = _clean("circle", 0.5, 0.4, 0.5)
    soft = oracle.oracle_reward(soft_gate=True)
    assert soft.is_differentiable and soft.requires_prompts
    probability = ShapesFidelity().score(image, [prompt])
    expected = probability * oracle.oracle_score(image, [prompt])
    torch.testing.assert_close(soft.score(image, [prompt]), expected)
    assert float(probability) > 0.9  # a clean matching image passes the soft gate
    wrong = make_prompt("triangle", "red", "white")
    assert float(soft.score(image, [wrong])) < 0.1 * float(oracle.oracle_score(image, [wrong]))


def _rows(arm: str, values: dict[str, list[float]]) -> list[dict]:
    count = len(next(iter(values.values())))
    return [
        {"arm": arm, "prompt": f"p{i}", "seed": 0, **{k: v[i] for k, v in values.items()}}
        for i in range(count)
    ]


def _filled(arm: str, centring: list[float], fidelity: list[float]) -> list[dict]:
    from null_levers import MEASURES

    rows = _rows(arm, {"centring": centring, "fidelity": fidelity})
    for row in rows:
        row.update({key: 0.5 for key in MEASURES if key not in row})
    return rows


def test_the_reading_gives_each_of_its_verdicts(load_benchmark):
    oracle = load_benchmark("null_oracle")
    greedy = {(r["prompt"], r["seed"]): r for r in _filled("g0", [0.5, 0.6, 0.7, 0.8], [1] * 4)}

    def read(centring: list[float], fidelity: list[float]) -> dict:
        arm = {(r["prompt"], r["seed"]): r for r in _filled("g1", centring, fidelity)}
        return oracle.oracle_reading(arm, greedy, plain_fidelity=1.0)

    moved = read([0.6, 0.72, 0.79, 0.91], [1] * 4)  # +0.105 ± 0.005 over G0
    assert moved["moved"] and moved["fidelity_kept"] and "proxy" in moved["verdict"]
    assert moved["centring_minus_greedy"]["mean"] == pytest.approx(0.105)
    broke = read([0.6, 0.72, 0.79, 0.91], [1, 1, 0, 1])
    assert broke["moved"] and not broke["fidelity_kept"] and "cost" in broke["verdict"]
    still = read([0.52, 0.58, 0.71, 0.79], [1] * 4)
    assert not still["moved"] and "mechanism" in still["verdict"]


def test_the_summary_pairs_each_arm_with_g0_plain_and_the_proxy(load_benchmark):
    oracle = load_benchmark("null_oracle")
    levers = load_benchmark("null_levers")
    reference = [
        *_filled(levers.PLAIN, [0.4, 0.5, 0.6, 0.7], [1] * 4),
        *_filled(levers.NULLTTA, [0.45, 0.5, 0.6, 0.75], [1] * 4),
    ]
    rows = [
        *_filled(oracle.G0, [0.5, 0.6, 0.7, 0.8], [1] * 4),
        *_filled(oracle.G1, [0.6, 0.7, 0.8, 0.9], [1] * 4),
    ]
    summary = oracle.summarise(rows, reference)
    g1 = summary["arms"][oracle.G1]
    assert g1["minus"]["G0"]["centring"]["mean"] == pytest.approx(0.1)
    assert g1["minus"]["plain"]["centring"]["mean"] == pytest.approx(0.2)
    assert g1["minus"]["proxy Null-TTA"]["centring"]["mean"] == pytest.approx(0.175)
    assert "G0" not in summary["arms"][oracle.G0]["minus"]
    assert list(summary["readings"]) == ["g1"]
    assert oracle.G1 in oracle.markdown(summary)


@needs_embedded
def test_an_oracle_arm_runs_and_reports_where_phi_went(load_benchmark, monkeypatch):
    from nulltta.bench.scoring import evaluation_scorers
    from nulltta.profiles import model_profile
    from nulltta.shapes.model import load_embedded_pipeline

    oracle = load_benchmark("null_oracle")
    sampler = oracle._sampler(2)
    monkeypatch.setattr(oracle, "_sampler", lambda b: {**sampler, "num_inference_steps": 4})
    pipe = load_embedded_pipeline()
    scorers = evaluation_scorers(model_profile("embedded"))
    pairs = [("a red circle on a white background", 0), ("a blue square on a gray background", 1)]
    rows = oracle.run_arm(pipe, pairs, scorers, 2, "g1")
    greedy = oracle.run_arm(pipe, pairs, scorers, 2, "g0")
    assert [r["arm"] for r in rows] == [oracle.G1] * 2
    assert all(r["displacement"] > 0 for r in rows)
    assert all(r["displacement"] == 0 for r in greedy)
    assert {"shapes-gold", "centring", "fidelity"} <= set(rows[0])


def test_both_levers_scripts_take_the_shared_options(load_benchmark):
    import argparse

    setup = load_benchmark("levers_setup")
    parser = argparse.ArgumentParser()
    setup.add_run_arguments(parser, "some/folder")
    args = parser.parse_args([])
    got = (str(args.out), args.prompts, args.batch_size, args.threads)
    assert got == ("some/folder", 16, 16, 1)
    assert not args.report_only
    assert parser.parse_args(["--report-only", "--prompts", "2"]).prompts == 2


@needs_embedded
def test_the_table_world_is_the_first_prompts_with_every_seed(load_benchmark):
    from nulltta.bench.shapesbench import shapesbench_prompts

    setup = load_benchmark("levers_setup")
    threads = torch.get_num_threads()
    try:
        pipe, scorers, pairs = setup.table_world(2, 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)  # table_world turns it on; leave the process as found
    first, second = shapesbench_prompts(2)
    assert pairs == [(first, 0), (first, 1), (first, 2), (second, 0), (second, 1), (second, 2)]
    assert {"target", "shapes-gold", "fidelity"} <= set(scorers)
    assert pipe.unet is not None
