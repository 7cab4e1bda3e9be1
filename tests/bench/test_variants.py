"""Variant tables: paired differences and ratios against a baseline, on hand-made rows."""

from __future__ import annotations

import pytest

from nulltta.bench import make_method
from nulltta.bench.variants import variant_table


def _row(method, prompt, target, fidelity, seconds, steps=10):
    return {
        "method": method,
        "prompt": prompt,
        "seed": 0,
        "target": target,
        "heldout": {"h": target / 2},
        "fidelity": fidelity,
        "seconds": seconds,
        "peak_memory_delta_mb": 100.0,
        "info": {"inner_steps": steps},
    }


def _cells(table: str, label: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(f"| `{label}`"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_variant_table_gives_paired_differences_and_ratios():
    rows = [
        _row("base", "p1", 0.5, 1.0, 10.0),
        _row("base", "p2", 0.7, 0.0, 30.0),
        _row("fast", "p1", 0.6, 1.0, 5.0, steps=5),
        _row("fast", "p2", 0.6, 1.0, 15.0, steps=5),
        _row("fast", "p3", 9.9, 0.0, 1.0),  # no baseline row: left out
        _row("plain", "p1", 0.4, 1.0, 1.0),
        _row("plain", "p2", 0.4, 1.0, 1.0),
    ]
    table = variant_table(rows, {"base": "baseline", "fast": "half"}, baseline="base")
    cells = _cells(table, "fast")
    assert cells[1:6] == ["2", "0.50", "10.0", "1.00", "0.50"]  # pairs, time, vs plain, mem, steps
    assert float(cells[6]) == pytest.approx(0.0)  # (0.1 - 0.1) / 2
    assert float(cells[7]) == pytest.approx(0.0)
    assert float(cells[8]) == pytest.approx(0.5)  # fidelity (0 + 1) / 2
    assert float(cells[9]) == pytest.approx(0.6)  # own mean target
    assert _cells(table, "base")[6] == "+0.0000"


def test_release_presets_pin_the_release_kl_and_the_default_leaves_it_to_the_model():
    default, release = make_method("nulltta"), make_method("nulltta-release-fast")
    assert (default.kl_weight, default.anneal_kl) == (None, None)
    assert (release.kl_weight, release.anneal_kl) == (0.002, True)
    assert release.optimize_every == 2
    assert make_method("nulltta-release:kl_weight=0.2").anneal_kl is True


def test_variants_main_writes_the_table_from_the_rows(tmp_path):
    import json

    from nulltta.bench.variants import variants_main

    rows = [_row("base", "p1", 0.5, 1.0, 10.0), _row("fast", "p1", 0.7, 0.0, 5.0)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    variants = {"base": "baseline", "fast": "half"}
    status = variants_main(
        "doc", variants, name="demo", title="Demo", default_out=str(tmp_path), baseline="base",
        argv=["--table-only"],
    )  # fmt: skip
    assert status == 0
    table = (tmp_path / "demo.md").read_text()
    assert float(_cells(table, "fast")[6]) == pytest.approx(0.2)
    assert len(json.loads((tmp_path / "demo.json").read_text())) == 2


def test_shapesbench_run_parser_shares_the_scripts_arguments():
    from pathlib import Path

    from nulltta.bench.variants import shapesbench_run_parser

    parser = shapesbench_run_parser("doc", "out/default", default_prompts=4, default_seeds=(0, 1))
    args = parser.parse_args([])
    assert (args.out, args.prompts, args.seeds, args.steps, args.shard) == (
        Path("out/default"), 4, [0, 1], 20, "0/1"
    )
    args = parser.parse_args(["--seeds", "3", "--shard", "1/2", "--out", "x"])
    assert (args.seeds, args.shard, args.out) == ([3], "1/2", Path("x"))
