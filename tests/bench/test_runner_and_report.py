from __future__ import annotations

import json

import pytest

from nulltta.bench import load_rows, make_method, run_benchmark, write_report
from nulltta.bench.cli import read_prompts
from nulltta.bench.plots import pareto_front
from nulltta.cli import main
from nulltta.jsonl import PartialRowWarning
from nulltta.rewards import Brightness, Saturation

PROMPTS = ["a red circle", "a blue square"]
SAMPLING = {"num_inference_steps": 4}


def _run(pipe, out, methods=("plain", "best-of-n:n=2"), seeds=(0, 1), sampling=SAMPLING):
    return run_benchmark(
        pipe,
        {spec: make_method(spec) for spec in methods},
        PROMPTS,
        list(seeds),
        Brightness(),
        out,
        heldout={"saturation": Saturation()},
        fidelity=lambda images, prompts: images.mean((1, 2, 3)),
        sampling=sampling,
        description={"model": "tiny", "target": "brightness"},
        progress=False,
    )


def test_rows_are_written_and_a_rerun_skips_them(tiny_pipe, tmp_path):
    rows = _run(tiny_pipe, tmp_path)
    assert len(rows) == 2 * 2 * 2
    row = rows[0]
    assert {"target", "heldout", "fidelity", "seconds", "peak_memory_mb", "unet_forward"} <= set(
        row
    )
    assert row["heldout"]["saturation"] >= 0 and (tmp_path / row["image"]).is_file()
    assert row["unet_forward"] == 2 * 4 and row["memory_kind"] == "process_peak_rss"
    lines = (tmp_path / "rows.jsonl").read_text().splitlines()
    again = _run(tiny_pipe, tmp_path)
    assert (tmp_path / "rows.jsonl").read_text().splitlines() == lines
    assert len(again) == len(rows)
    more = _run(tiny_pipe, tmp_path, methods=("plain", "best-of-n:n=2", "greedy"))
    assert len(more) == 12 and [r["method"] for r in more[8:]] == ["greedy"] * 4


def test_a_resume_after_a_write_cut_mid_line_finds_every_row(tiny_pipe, tmp_path):
    rows = _run(tiny_pipe, tmp_path, methods=("plain",), seeds=(0,))
    assert len(rows) == 2
    path = tmp_path / "rows.jsonl"
    text = path.read_text()
    second = text.index("\n") + 1
    path.write_text(text[: second + (len(text) - second) // 2])  # a crash while writing row 2
    with pytest.warns(PartialRowWarning):
        assert load_rows(tmp_path) == rows[:1]
    with pytest.warns(PartialRowWarning) as caught:
        resumed = _run(tiny_pipe, tmp_path, methods=("plain",), seeds=(0,))
    assert any("removed a partial last row" in str(w.message) for w in caught)
    assert len(resumed) == 2 and resumed[0] == rows[0]
    assert [(r["prompt"], r["seed"]) for r in resumed] == [(r["prompt"], r["seed"]) for r in rows]
    assert resumed[1]["target"] == rows[1]["target"]  # the lost image, made again
    assert len(path.read_text().splitlines()) == 2


def test_a_rerun_with_other_settings_is_refused(tiny_pipe, tmp_path):
    _run(tiny_pipe, tmp_path, methods=("plain",), seeds=(0,))
    with pytest.raises(ValueError, match="other settings"):
        _run(
            tiny_pipe, tmp_path, methods=("plain",), seeds=(0,), sampling={"num_inference_steps": 5}
        )


def test_best_of_n_is_never_below_plain_and_the_report_is_written(tiny_pipe, tmp_path):
    _run(tiny_pipe, tmp_path)
    summary = write_report(tmp_path, set_metrics={"mean": lambda images: float(images.mean())})
    rows = load_rows(tmp_path)
    plain = {(r["prompt"], r["seed"]): r["target"] for r in rows if r["method"] == "plain"}
    for row in rows:
        if row["method"] == "best-of-n:n=2":
            assert row["target"] >= plain[(row["prompt"], row["seed"])] - 1e-6
    assert summary["plain"]["images"] == 4 and summary["plain"]["time_vs_plain"] == 1.0
    assert summary["plain"]["target"]["std"] >= 0
    table = (tmp_path / "results.md").read_text()
    assert "`best-of-n:n=2`" in table and "saturation ↑" in table and "mean ↓" in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["rows"]) == 8 and set(results["summary"]) == {"plain", "best-of-n:n=2"}
    assert (tmp_path / "pareto.png").is_file()
    assert sorted(p.name for p in (tmp_path / "grids").iterdir()) == ["p000.png", "p001.png"]


def test_pareto_front_keeps_undominated_points():
    points = {"a": (1.0, 1.0), "b": (2.0, 0.5), "c": (0.5, 0.5), "d": (2.0, 1.0)}
    assert pareto_front(points) == ["d"]
    points.pop("d")
    assert pareto_front(points) == ["a", "b"]


def test_make_method_reads_settings_and_refuses_unknown_ones():
    assert make_method("nulltta:n_max=55:decode_scale=0.5").n_max == 55
    assert make_method("nulltta-fast").optimize_every == 2
    assert make_method("dno-noreg").regularization == 0.0
    with pytest.raises(ValueError, match="unknown method"):
        make_method("sgd")
    with pytest.raises(ValueError, match="key one of"):
        make_method("dno:steps=3")


def test_cli_bench_end_to_end(tiny_pipe, tmp_path, capsys):
    model = tmp_path / "model"
    tiny_pipe.save_pretrained(model)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# two prompts\na red circle\n\na blue square\n")
    assert read_prompts(prompts) == PROMPTS
    out = tmp_path / "out"
    argv = ["bench", "--model", str(model), "--target", "brightness", "--heldout", "saturation"]
    argv += ["--fidelity", "none", "--methods", "plain", "greedy:num_candidates=2"]
    argv += [
        "--prompts",
        str(prompts),
        "--seeds",
        "0",
        "--steps",
        "3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(argv) == 0
    assert "| `greedy:num_candidates=2` |" in capsys.readouterr().out
    assert len(load_rows(out)) == 4
    assert main(["bench", "--model", str(model), "--report-only", "--out", str(out)]) == 0


def test_shards_split_the_pairs_and_share_one_folder(tiny_pipe, tmp_path):
    methods = {"plain": make_method("plain")}
    for shard in ((0, 2), (1, 2)):
        run_benchmark(
            tiny_pipe,
            methods,
            PROMPTS,
            [0, 1],
            Brightness(),
            tmp_path,
            sampling=SAMPLING,
            progress=False,
            shard=shard,
        )
    keys = [(r["prompt"], r["seed"]) for r in load_rows(tmp_path)]
    assert sorted(keys) == sorted((p, s) for p in PROMPTS for s in (0, 1))
