"""Part F of the levers follow-up: phi' held to the span of the semantic directions."""

from __future__ import annotations

import math

import pytest
import torch

from nulltta.loading import embedded_model_available

PROMPT = "a red circle on a white background"
needs_embedded = pytest.mark.skipif(not embedded_model_available(), reason="no embedded model")


def test_the_basis_is_orthonormal_and_spans_dependent_directions(load_benchmark):
    span = load_benchmark("null_levers_span")
    levers = load_benchmark("null_levers")
    torch.manual_seed(0)
    a, b, c = torch.randn(3, 4, 8)
    directions = torch.stack([a, b, a - 2 * b, c, b + c])  # rank 3
    basis = span.orthonormal_basis(directions)
    assert basis.shape == (3, 4, 8)
    flat = basis.flatten(1).double()
    torch.testing.assert_close(flat @ flat.T, torch.eye(3, dtype=torch.float64), atol=1e-6, rtol=0)
    for direction in directions:
        assert levers.span_fraction(direction.flatten(), flat) == pytest.approx(1.0, abs=1e-9)
    assert levers.span_fraction(torch.randn(32), flat) < 0.9  # a random vector is not in it


def test_the_matched_learning_rate_gives_the_free_phis_first_step_length(load_benchmark):
    span = load_benchmark("null_levers_span")
    assert span.span_learning_rate(False, 7) == 0.03
    # Adam's first step moves each of k coordinates by lr: lr sqrt(k) = 0.03 sqrt(2048).
    lr = span.span_learning_rate(True, 7)
    assert lr * math.sqrt(7) == pytest.approx(0.03 * math.sqrt(2048))
    assert span.span_learning_rate(True, 2048) == pytest.approx(0.03)


def test_span_null_starts_at_phi_and_moves_along_the_basis(load_benchmark):
    span = load_benchmark("null_levers_span")
    torch.manual_seed(1)
    phi = torch.randn(2, 4, 8)
    bases = torch.stack([span.orthonormal_basis(torch.randn(3, 4, 8)) for _ in range(2)])
    null = span.SpanNull(None, None, bases)
    start = null.initial(phi)
    assert start.shape == (2, 3) and torch.equal(null.phi(start), phi)
    coefficients = torch.tensor([[1.0, 0.0, -2.0], [0.0, 0.5, 0.0]])
    moved = null.phi(coefficients)
    torch.testing.assert_close(moved[0], phi[0] + bases[0, 0] - 2 * bases[0, 2])
    torch.testing.assert_close(moved[1], phi[1] + 0.5 * bases[1, 1])


@needs_embedded
def test_the_nine_directions_have_rank_seven_by_construction(load_benchmark):
    from nulltta.adapters import make_adapter
    from nulltta.shapes.model import load_embedded_pipeline

    span = load_benchmark("null_levers_span")
    adapter = make_adapter(load_embedded_pipeline())
    directions = span.semantic_directions(adapter, PROMPT)
    assert len(directions) == 9
    # d_ls is "large" minus "small"; d_size - d_position is "large" minus "centre" (P_L is
    # the negative caption's text): two exact dependencies.
    torch.testing.assert_close(
        directions["d_ls"], directions["negative large"] - directions["negative small"],
        atol=1e-5, rtol=0,
    )  # fmt: skip
    torch.testing.assert_close(
        directions["d_size"] - directions["d_position"],
        directions["negative large"] - directions["negative centre"],
        atol=1e-5, rtol=0,
    )  # fmt: skip
    assert len(span.orthonormal_basis(torch.stack(list(directions.values())))) == 7


@needs_embedded
def test_the_span_aligner_moves_phi_only_inside_the_prompts_span(load_benchmark):
    from nulltta.adapters import make_adapter
    from nulltta.shapes.model import load_embedded_pipeline

    span = load_benchmark("null_levers_span")
    levers = load_benchmark("null_levers")
    pipe = load_embedded_pipeline()
    prompts = [PROMPT, "a blue square on a black background"]
    aligner = span.SpanAligner(
        pipe, "shapes-preference", num_inference_steps=4, n_min=1, n_max=2, num_candidates=1,
        learning_rate=0.5, batch_size=2,
    ).fit(prompts, seeds=[0, 1])  # fmt: skip
    assert aligner.module_.null_embedding.shape == (2, 7)
    adapter = make_adapter(pipe)
    phi = adapter.pack_null(adapter.encode_prompt("")[1])[0]
    for prompt, phis in zip(prompts, aligner.phis_, strict=True):
        directions = torch.stack(list(span.semantic_directions(adapter, prompt).values()))
        deltas = [phi_step[0] - phi for phi_step in phis]  # phi' after each step
        assert max(float(delta.norm()) for delta in deltas) > 0.1
        for delta in deltas:
            if delta.norm() > 1e-3:
                fraction = levers.span_fraction(delta.flatten(), directions.flatten(1))
                assert fraction == pytest.approx(1.0, abs=1e-6)


def _row(arm: str, seed: int, gold: float, fidelity: float = 1.0) -> dict:
    scores = {"target": 0.3, "shapes-gold": gold, "fidelity": fidelity, "gate": 1.0,
              "size_term": 0.5, "diagonal": 0.5, "centring": 0.7, "size": 0.5}  # fmt: skip
    return {"arm": arm, "prompt": "p", "seed": seed, "displacement": 1.0, **scores}


def _span_row(arm: str, seed: int, gold: float, fidelity: float = 1.0) -> dict:
    measured = {"rank": 7, "learning_rate": 0.5, "span_fraction": 1.0, "cosine toward gold": 0.1}
    return {**_row(arm, seed, gold, fidelity), **measured}


def _rows(levers, span, golds: list[float], fidelity: float = 1.0) -> list[dict]:
    rows = [_row(levers.PLAIN, s, 0.5) for s in range(3)]
    part_b = {"cosine": {"toward gold (-d_both)": 0.0}, "span_fraction": 0.02,
              "span_directions": 8, "numbers": 2048}  # fmt: skip
    rows += [{**_row(levers.NULLTTA, s, 0.55), **part_b} for s in range(3)]
    return rows + [_span_row(span.F1, s, g, fidelity) for s, g in enumerate(golds)]


def test_part_f_is_read_against_the_free_phi_and_plain_as_fixed(load_benchmark):
    levers = load_benchmark("null_levers")
    span = load_benchmark("null_levers_span")
    report = load_benchmark("null_levers_report")
    supports = report.summarise(_rows(levers, span, [0.70, 0.72, 0.71]), [])["part_f"]["f1"]
    assert supports["above_free"] and supports["fidelity_kept"] and supports["primary"]
    assert supports["verdict"].startswith("supports")
    assert supports["minus_free"]["shapes-gold"]["mean"] == pytest.approx(0.16)
    broken = report.summarise(_rows(levers, span, [0.70, 0.72, 0.71], 0.5), [])["part_f"]["f1"]
    assert not broken["fidelity_kept"] and not broken["verdict"].startswith("supports")
    between = report.summarise(_rows(levers, span, [0.55, 0.56, 0.54]), [])["part_f"]["f1"]
    assert between["above_plain"] and not between["above_free"]
    assert between["verdict"].startswith("raises gold over plain")
    flat = report.summarise(_rows(levers, span, [0.49, 0.52, 0.50]), [])
    assert flat["part_f"]["f1"]["verdict"].startswith("holding phi'")
    assert "f2" not in flat["part_f"]  # not run
    assert "## Part F" in report.markdown(flat)
