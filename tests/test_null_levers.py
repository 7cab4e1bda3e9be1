"""The null-branch lever diagnostic computes what its design says."""

from __future__ import annotations

import statistics

import pytest
import torch

from nulltta.shapes.world import sample_batch


def test_captions_add_one_word_or_change_one_attribute(load_benchmark):
    levers = load_benchmark("null_levers")
    text = levers.captions("a red circle on a white background")
    assert text["negative small"] == "a small red circle on a white background"
    assert text["negative large"] == "a large red circle on a white background"
    assert text["negative top left"] == "a red circle in the top left on a white background"
    assert text["negative bottom right"] == "a red circle in the bottom right on a white background"
    assert text["negative centre"] == "a red circle in the centre on a white background"
    assert text[levers.CEILING] == "a large red circle in the centre on a white background"
    assert text["next colour"] == "a green circle on a white background"
    assert text["next shape"] == "a red square on a white background"
    # The last name wraps round to the first.
    assert levers.captions("a magenta cross on a brown background")["next shape"] == (
        "a magenta circle on a brown background"
    )


def test_span_fraction_is_the_squared_cosine_sum_on_an_orthonormal_basis(load_benchmark):
    levers = load_benchmark("null_levers")
    torch.manual_seed(0)
    basis = torch.linalg.qr(
        torch.randn(64, 3, dtype=torch.float64)
    ).Q.T  # 3 orthonormal rows in R^64
    delta = torch.randn(64, dtype=torch.float64)
    expected = sum(levers.cosine(delta, row) ** 2 for row in basis)
    assert levers.span_fraction(delta, basis) == pytest.approx(expected, rel=1e-9)
    # In the span: all of it; orthogonal to it: none; scaled directions change nothing.
    inside = 2 * basis[0] - 0.5 * basis[2]
    assert levers.span_fraction(inside, 3 * basis) == pytest.approx(1.0)
    outside = delta - basis.T @ (basis @ delta)
    assert levers.span_fraction(outside, basis) == pytest.approx(0.0, abs=1e-12)


def test_cosine_is_the_normalised_inner_product(load_benchmark):
    levers = load_benchmark("null_levers")
    a, b = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert levers.cosine(a, b) == pytest.approx(0.5)  # flattened: <a, b> = 1, norms sqrt(2)
    assert levers.cosine(a, -a) == pytest.approx(-1.0)


def test_geometry_rows_read_size_and_diagonal_from_the_pixels(load_benchmark):
    levers = load_benchmark("null_levers")
    batch = sample_batch(64, seed=5)
    rows = levers.geometry_rows(batch.images, batch.prompts)
    size = torch.tensor([r["size"] for r in rows])
    diagonal = torch.tensor([r["diagonal"] for r in rows])
    assert (size - batch.size).abs().max() < 0.03
    assert (diagonal - (batch.cx + batch.cy) / 2).abs().max() < 0.02
    assert {r["gate"] for r in rows} == {1.0}


def _row(arm: str, seed: int, size: float, gold: float = 0.5) -> dict:
    scores = {"target": 0.3, "shapes-gold": gold, "fidelity": 1.0, "gate": 1.0,
              "size_term": 0.5, "diagonal": 0.5, "centring": 0.7}  # fmt: skip
    return {"arm": arm, "prompt": "p", "seed": seed, "size": size, **scores}


def test_summary_pairs_against_plain_and_reads_the_levers_as_stated(load_benchmark):
    levers = load_benchmark("null_levers")
    report = load_benchmark("null_levers_report")
    plain = [0.50, 0.40, 0.60]
    small = [0.60, 0.55, 0.65]  # larger every time: the lever exists
    large = [0.55, 0.35, 0.62]  # not smaller by 2 SE: it does not
    rows = [_row(levers.PLAIN, s, v, gold=0.1 * s) for s, v in enumerate(plain)]
    rows += [_row("negative small", s, v) for s, v in enumerate(small)]
    rows += [_row("negative large", s, v) for s, v in enumerate(large)]
    table = [{"method": "plain", "prompt": "p", "seed": s, "heldout": {"shapes-gold": 0.1 * s + d}}
             for s, d in enumerate([0.0, 0.002, 0.0])]  # fmt: skip
    summary = report.summarise(rows, table)
    deltas = [a - b for a, b in zip(small, plain, strict=True)]
    moved = summary["arms"]["negative small"]["size"]["minus_plain"]
    assert moved["mean"] == pytest.approx(statistics.fmean(deltas))
    assert moved["se"] == pytest.approx(statistics.stdev(deltas) / 3**0.5)
    assert summary["levers"]["negative small"]["exists"] is True
    assert summary["levers"]["negative large"]["exists"] is False
    assert "negative centre" not in summary["levers"]  # not run
    check = summary["checks"]["plain"]
    assert (check["pairs"], check["max_gold_difference"]) == (3, pytest.approx(0.002))
    assert "part_b" not in summary and "part_c" not in summary
    assert "| negative small | size | up |" in report.markdown(summary)


@pytest.mark.parametrize(
    ("gold", "fidelity", "raised", "kept"),
    [
        ([0.6, 0.7, 0.65], [1.0, 1.0, 1.0], True, True),  # gold up, prompt kept
        ([0.6, 0.7, 0.65], [1.0, 0.0, 1.0], True, False),  # gold up, a prompt broken
        ([0.5, 0.4, 0.6], [1.0, 1.0, 1.0], False, True),  # gold within noise of plain
    ],
)
def test_part_c_is_read_by_its_primary_rule(load_benchmark, gold, fidelity, raised, kept):
    levers = load_benchmark("null_levers")
    report = load_benchmark("null_levers_report")
    rows = [_row(levers.PLAIN, s, 0.5, gold=0.5) for s in range(3)]
    rows += [_row(levers.PART_C_PLAIN, s, 0.5, gold=0.5) for s in range(3)]
    for s, (g, f) in enumerate(zip(gold, fidelity, strict=True)):
        rows.append({**_row(levers.PRIMARY, s, 0.5, gold=g), "fidelity": f})
    summary = report.summarise(rows, [])
    reading = summary["part_c"]
    assert (reading["gold_raised"], reading["fidelity_kept"]) == (raised, kept)
    assert reading["verdict"].startswith("a semantic phi' raises") == (raised and kept)
    assert summary["checks"][levers.PART_C_PLAIN]["max_gold_difference"] == 0
    assert f"Primary reading ({levers.PRIMARY})" in report.markdown(summary)


def test_part_c_arms_start_with_the_plain_check_and_cover_every_lever(load_benchmark):
    levers = load_benchmark("null_levers")
    arms = levers.part_c_arms()
    assert next(iter(arms.items())) == (levers.PART_C_PLAIN, ("both", 0.0))
    assert levers.PRIMARY in arms and arms[levers.PRIMARY] == ("both", 1.0)
    assert len(arms) == 1 + len(levers.ATTRIBUTES) * len(levers.ALPHAS)


def test_attribute_directions_leave_the_tokens_before_the_inserted_word(load_benchmark):
    # The embedded text encoder is causal: inserting "large" after "a" leaves the
    # first two positions (start token, "a") as they were, and moves every later one.
    from nulltta.loading import embedded_model_available

    if not embedded_model_available():
        pytest.skip("no embedded model")
    from nulltta.shapes.model import load_embedded_pipeline

    levers = load_benchmark("null_levers")
    (row,) = levers.direction_norms(
        load_embedded_pipeline(), ["a red circle on a white background"]
    )
    size = row["per_token"]["d_size"]
    assert size[:2] == pytest.approx([0.0, 0.0], abs=1e-5)
    assert min(size[2:8]) > 1.0
    aligned = row["per_token"]["d_aligned size"]  # "large" against "small" at position 2
    assert aligned[:2] == pytest.approx([0.0, 0.0], abs=1e-5) and aligned[2] > 1.0
    assert row["norm"]["d_both"] > 0 and row["norm"]["prompt minus phi"] > 0


def test_part_d_reads_the_best_gold_among_the_arms_that_keep_the_prompt(load_benchmark):
    levers = load_benchmark("null_levers")
    report = load_benchmark("null_levers_report")
    low, high, broken, best = list(levers.part_d_arms())
    rows = [_row(levers.PLAIN, s, 0.5, gold=0.5) for s in range(3)]
    arms = {
        low: ([0.52, 0.50, 0.51], 1.0),  # keeps the prompt, within noise
        high: ([0.60, 0.62, 0.61], 1.0),  # keeps it, gold up by far more than 2 SE
        broken: ([0.90, 0.95, 0.92], 0.0),  # the best gold, but every prompt broken
    }
    for arm, (golds, fidelity) in arms.items():
        rows += [{**_row(arm, s, 0.5, gold=g), "fidelity": fidelity} for s, g in enumerate(golds)]
    summary = report.summarise(rows, [])
    assert summary["part_d"]["arm"] == high and summary["part_d"]["gold_raised"] is True
    assert best not in summary["arms"]  # not run
    rows = [r for r in rows if r["arm"] != high]
    assert report.summarise(rows, [])["part_d"]["gold_raised"] is False
    rows = [r for r in rows if r["arm"] != low]
    assert report.summarise(rows, [])["part_d"]["arm"] is None


def _directed(arm: str, seed: int, span: float, toward: float) -> dict:
    cosines = {"own prompt": 0.0, "toward gold (-d_both)": toward}
    directed = {"span_fraction": span, "displacement": 1.0, "numbers": 2048, "span_directions": 8}
    return {**_row(arm, seed, 0.5), **directed, "cosine": cosines}


def test_part_e_pairs_the_manifold_against_the_free_phi(load_benchmark):
    levers = load_benchmark("null_levers")
    report = load_benchmark("null_levers_report")
    rows = [_row(levers.PLAIN, s, 0.5) for s in range(3)]
    rows += [_directed(levers.NULLTTA, s, 0.02, 0.0) for s in range(3)]
    spans, towards = [0.10, 0.12, 0.11], [0.01, -0.02, 0.02]  # span up by far, toward within noise
    rows += [_directed(levers.MANIFOLD, s, spans[s], towards[s]) for s in range(3)]
    summary = report.summarise(rows, [])
    part_e = summary["part_e"]
    assert part_e["minus_free"]["span_fraction"]["mean"] == pytest.approx(0.09)
    assert (part_e["more_semantic"], part_e["more_toward_gold"]) == (True, False)
    assert part_e["chance_span_fraction"] == pytest.approx(8 / 2048)
    assert summary["part_b"]["span_fraction"]["mean"] == pytest.approx(0.02)
    assert "## Part E" in report.markdown(summary)
