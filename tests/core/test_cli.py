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
    aligned_target = summary["scores"]["aligned"]["target"]
    assert aligned_target == pytest.approx(json.loads(aligned.text["reward"]))
    assert json.loads(plain.text["scores"]) == summary["scores"]["plain"]
    comparison = Image.open(out / "comparison.png")
    assert comparison.size[0] == 2 * 256 and comparison.size[1] > 256
    # The right half is the aligned image, upscaled by whole pixels.
    expected = aligned.convert("RGB").resize((256, 256), Image.NEAREST)
    assert comparison.crop((256, 0, 512, 256)).tobytes() == expected.tobytes()
    assert Image.open(out / "rewards.png").size[0] > 0
    printed = capsys.readouterr().out
    assert f"target (brightness): aligned {summary['scores']['aligned']['target']:.4f}" in printed


def test_generate_on_the_embedded_model_reports_gold_for_both_images(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["generate", "a red circle on a white background", "--steps", "3", "--n-min", "1"]
    args += ["--n-max", "1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    scores = json.loads((out / "summary.json").read_text())["scores"]
    assert set(scores["aligned"]) == set(scores["plain"]) == {"target", "gold (shapes-gold)"}
    printed = capsys.readouterr().out
    assert "target (shapes-preference): aligned" in printed
    assert f"gold (shapes-gold): aligned {scores['aligned']['gold (shapes-gold)']:.4f}" in printed


def test_generate_passes_the_kl_and_schedule_settings(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    args = ["generate", "a red circle", "--model", str(tiny_model_dir), "--reward", "brightness"]
    args += ["--steps", "2", "--n-min", "0", "--n-max", "1", "--no-plain", "--quiet"]
    args += ["--kl-weight", "0.05", "--kl-annealing", "off", "--out", str(out)]
    args += ["--inner-steps-order", "ramp_down"]
    assert main(args) == 0
    config = json.loads(Image.open(out / "aligned.png").text["config"])
    assert (config["kl_weight"], config["anneal_kl"]) == (0.05, False)
    assert config["inner_steps_order"] == "ramp_down"


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
