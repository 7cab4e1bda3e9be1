"""``nulltta run`` end to end on the tiny model: outputs, reruns, processes, refusals."""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

from nulltta.cli import main
from nulltta.run.files import read_png_metadata

from .conftest import (
    FAST,
    assert_same_run,
    manifest_rows,
    run_args,
    run_command,
    run_in_process,
)


def test_a_run_writes_every_image_with_its_metadata_row_summary_and_grid(reference_run):
    rows = manifest_rows(reference_run)
    prompts = ["a red circle", "a blue square", "a green circle", "a cat on a sofa",
               "a dog on a sofa", "a red house"]  # fmt: skip
    assert [(r["prompt"], r["seed"]) for r in rows] == [(p, s) for p in prompts for s in (0, 1)]
    assert {r["status"] for r in rows} == {"ok"}
    for row in rows:
        path = reference_run / row["file"]
        with Image.open(path) as image:
            image.load()  # a whole PNG
        metadata = read_png_metadata(path)
        assert (metadata["prompt"], metadata["seed"]) == (row["prompt"], row["seed"])
        assert metadata["reward"] == row["reward"] and metadata["reward_name"] == "brightness"
        assert set(metadata["heldout"]) == {"contrast"} == set(row["heldout"])
        assert metadata["config"]["num_inference_steps"] == 4
        assert metadata["config"]["n_max"] == 2 and metadata["skipped_steps"] == 0
    assert [r["batch_size"] for r in rows] == [2] * len(rows)
    summary = (reference_run / "summary.md").read_text()
    assert "| 5 | a red house | 2 |" in summary and "| | **all** | 12 |" in summary
    assert "1 duplicate dropped (line 6 = line 2)" in summary
    with Image.open(reference_run / "grid.png") as grid:  # 2 prompts x (plain, aligned)
        assert grid.size == (2 * 128 + 3 * 4, 2 * 128 + 3 * 4)
    assert sorted(p.name for p in (reference_run / "plain").iterdir()) == [
        "p0000-s0.png",
        "p0001-s0.png",
    ]


def test_a_rerun_of_a_finished_run_makes_nothing_new(copy_of_reference, prompts_file, tiny_model):
    rows_file = copy_of_reference / "rows" / "rank-00000.jsonl"
    before = rows_file.read_bytes()
    assert run_in_process(copy_of_reference, prompts_file, tiny_model) == 0
    assert rows_file.read_bytes() == before


def test_a_rerun_with_other_settings_is_refused(
    copy_of_reference, prompts_file, tiny_model, capsys
):
    args = run_args(copy_of_reference, prompts_file, tiny_model, "--kl-weight", "0.5")
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "holds a run with other settings" in error
    assert "kl_weight: null in" in error and "0.5 now" in error
    assert "pass --out a new folder" in error


def test_a_different_batch_size_continues_the_run(copy_of_reference, prompts_file, tiny_model):
    (copy_of_reference / "images" / "p0005-s1.png").unlink()
    assert run_in_process(copy_of_reference, prompts_file, tiny_model, "--batch-size", "3") == 0
    row = manifest_rows(copy_of_reference)[-1]
    assert (row["key"], row["status"], row["batch_size"]) == ("p0005-s1", "ok", 3)


@pytest.mark.slow
def test_two_processes_give_the_same_images_as_one(
    reference_run, prompts_file, tiny_model, tmp_path
):
    out = tmp_path / "two"
    done = run_command(run_args(out, prompts_file, tiny_model, "--devices", "2"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.name for p in (out / "rows").iterdir()) == [
        "rank-00000.jsonl",
        "rank-00001.jsonl",
    ]
    assert {r["rank"] for r in manifest_rows(out)} == {0, 1}
    assert_same_run(out, reference_run)


def test_an_unwritable_output_folder_is_refused_before_any_model_work(
    prompts_file, tmp_path, capsys
):
    (tmp_path / "file").write_text("")
    args = run_args(tmp_path / "file" / "out", prompts_file, tmp_path / "no-such-model")
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "cannot write to the output folder" in error and "no-such-model" not in error


def test_a_corrupt_weights_file_stops_the_run_naming_it(tiny_model, prompts_file, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert run_in_process(tmp_path / "out", prompts_file, model) == 2
    assert f"weights file {weights} is corrupt or truncated" in capsys.readouterr().err
    assert not (tmp_path / "out" / "images").exists()


def test_over_long_prompts_are_refused_or_cut_on_request(tiny_model, tmp_path, capsys):
    long_prompt = " ".join(
        ["a red circle and a blue square"] * 3
    )  # 21 tokens; the encoder takes 16
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"a red circle\n{long_prompt}\n")
    assert run_in_process(tmp_path / "refused", prompts, tiny_model) == 2
    error = capsys.readouterr().err
    assert "line 2: 23 tokens, but the text encoder takes 16" in error
    assert "--allow-truncation" in error
    assert not (tmp_path / "refused" / "images").exists()
    assert run_in_process(tmp_path / "cut", prompts, tiny_model, "--allow-truncation") == 0
    truncated = [row["truncated"] for row in manifest_rows(tmp_path / "cut")]
    assert truncated == [False, False, True, True]
    assert "## Truncated prompts" in (tmp_path / "cut" / "summary.md").read_text()


def test_prompts_the_model_cannot_express_are_refused_before_any_image(tmp_path, capsys):
    pytest.importorskip("nulltta.shapes.world")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle on a white background\na dog on a sofa\n")
    args = ["run", "--prompts", str(prompts), "--out", str(tmp_path / "out"), "--model",
            "embedded", "--reward", "brightness", "--heldout", "--accelerator", "cpu", "--quiet",
            *FAST]  # fmt: skip
    assert main(args) == 2
    assert "1 prompt(s) cannot be aligned by this model:\n  line 2:" in capsys.readouterr().err
    assert not (tmp_path / "out" / "images").exists()


def test_device_is_chosen_with_accelerator_and_devices(prompts_file, tiny_model, tmp_path, capsys):
    assert run_in_process(tmp_path / "out", prompts_file, tiny_model, "--device", "cpu") == 2
    assert "--accelerator and --devices" in capsys.readouterr().err


def test_run_takes_every_method_flag_of_generate():
    from nulltta.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices

    def flags(name):
        return {o for a in subparsers[name]._actions for o in a.option_strings}

    generate_only = {"--seed", "--no-plain"}
    assert flags("generate") - generate_only <= flags("run")
