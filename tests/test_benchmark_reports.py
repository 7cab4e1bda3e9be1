"""The benchmark scripts rebuild their committed reports from their committed records.

Each report (``results.md``, ``flops.md``) is a pure function of the record next
to it, so a change to a script's report code (or a split of the script) that
alters a committed report byte for byte fails here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


@pytest.mark.parametrize(
    "folder", ["gradient_decoder", "model_v2_0/speed/gradient_decoder"]
)  # fmt: skip
def test_the_gradient_decoder_report_is_its_record(load_benchmark, folder):
    script = load_benchmark("gradient_decoder")
    record = json.loads((RESULTS / folder / "results.json").read_text())
    assert script.markdown(record) == (RESULTS / folder / "results.md").read_text()


def test_the_flops_report_is_its_record(load_benchmark):
    script = load_benchmark("flops")
    record = json.loads((RESULTS / "flops.json").read_text())
    assert script.markdown(record) == (RESULTS / "flops.md").read_text()


@pytest.mark.parametrize(
    ("folder", "arms"),
    [
        ("das_vs_official", None),  # every arm of the script
        ("das_vs_official_v2", ["ours", "official"]),
        ("das_vs_official_v2_1", ["ours", "official"]),
    ],
)
def test_the_das_comparison_rebuilds_from_its_rows(load_benchmark, tmp_path, folder, arms):
    script = load_benchmark("das_vs_official")
    copy = tmp_path / folder
    shutil.copytree(RESULTS / folder, copy, ignore=shutil.ignore_patterns("*.png", "images"))
    assert script.report_only(copy, list(script.ARMS) if arms is None else arms) == 0
    for name in ("results.md", "results.json"):
        assert (copy / name).read_text() == (RESULTS / folder / name).read_text(), name


def test_the_null_levers_report_is_its_rows(load_benchmark):
    from nulltta.jsonl import read_rows

    script = load_benchmark("null_levers")
    report = load_benchmark("null_levers_report")
    folder = RESULTS / "null_levers"
    rows = [r for part in script.PARTS for r in read_rows(folder / f"rows_{part}.jsonl")]
    summary = report.summarise(rows, read_rows(script.TABLE))
    assert report.markdown(summary) == (folder / "levers.md").read_text()
    assert summary == json.loads((folder / "levers.json").read_text())


def test_the_null_oracle_report_is_its_rows(load_benchmark):
    oracle = load_benchmark("null_oracle")
    folder = RESULTS / "null_oracle"
    summary = oracle.summarise(oracle.oracle_rows(folder), oracle.reference_rows())
    assert oracle.markdown(summary) == (folder / "oracle.md").read_text()
    assert summary == json.loads((folder / "oracle.json").read_text())
