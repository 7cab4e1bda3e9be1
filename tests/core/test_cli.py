from __future__ import annotations

import json

import pytest
from PIL import Image

from nulltta.cli import main


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_pipe):
    folder = tmp_path_factory.mktemp("tiny-sd")
    tiny_pipe.save_pretrained(folder)
    return folder


def test_generate_writes_images_metadata_and_history(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "generate",
            "a red circle",
            "--model",
            str(tiny_model_dir),
            "--reward",
            "brightness",
            "--steps",
            "4",
            "--n-min",
            "1",
            "--n-max",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    aligned = Image.open(out / "aligned.png")
    assert aligned.text["prompt"] == "a red circle" and json.loads(aligned.text["seed"]) == 5
    assert json.loads(aligned.text["config"])["n_max"] == 2
    plain = Image.open(out / "plain.png")
    assert plain.text["method"] == "plain-cfg"
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["aligned"]["reward"] == pytest.approx(json.loads(aligned.text["reward"]))
    assert "aligned" in capsys.readouterr().out


def test_generate_passes_the_kl_settings(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["generate", "a red circle", "--model", str(tiny_model_dir), "--reward", "brightness"]
    args += ["--steps", "2", "--n-min", "0", "--n-max", "1", "--no-plain", "--quiet"]
    args += ["--kl-weight", "0.05", "--kl-annealing", "off", "--out", str(out)]
    assert main(args) == 0
    config = json.loads(Image.open(out / "aligned.png").text["config"])
    assert (config["kl_weight"], config["anneal_kl"]) == (0.05, False)


def test_generate_reports_bad_input_without_a_traceback(tiny_model_dir, tmp_path, capsys):
    code = main(
        [
            "generate",
            "a red circle",
            "--model",
            str(tiny_model_dir),
            "--guidance-scale",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "s > 1" in capsys.readouterr().err


def test_rewards_lists_the_built_in_rewards(capsys):
    assert main(["rewards"]) == 0
    out = capsys.readouterr().out
    assert "brightness" in out and "jpeg" in out
