"""The runner's pure parts: quantisation, image folder names, run.json checks."""

from __future__ import annotations

import json

import pytest
import torch

from nulltta.bench.runner import RUN_FILE, _check_run_file, _label_dir, quantize


def test_quantize_clamps_and_rounds_to_8_bits():
    images = torch.tensor([-0.2, 0.0, 0.5, 127.6 / 255, 1.0, 1.3], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.0, 128 / 255, 128 / 255, 1.0, 1.0])
    out = quantize(images.requires_grad_())
    assert out.dtype == torch.float32 and not out.requires_grad
    torch.testing.assert_close(out, expected, atol=0, rtol=0)


def test_label_dir_keeps_safe_characters_and_replaces_runs_of_others():
    assert _label_dir("best-of-n:n=2") == "best-of-n_n=2"
    assert _label_dir("nulltta-release_kl_mode=exact.v1") == "nulltta-release_kl_mode=exact.v1"
    assert _label_dir("a b//c") == "a_b_c"
    assert _label_dir("DNO:Steps=3") == "DNO_Steps=3"  # capitals are kept


def _run(methods, **shared):
    return {"sampling": {"num_inference_steps": 4}, "prompts": ["p"], **shared, "methods": methods}


def test_run_file_is_written_then_merged_with_new_methods(tmp_path):
    _check_run_file(tmp_path, _run({"plain": {"class": "Plain"}}, model="tiny"))
    first = json.loads((tmp_path / RUN_FILE).read_text())
    assert first == _run({"plain": {"class": "Plain"}}, model="tiny")
    _check_run_file(tmp_path, _run({"greedy": {"class": "Greedy"}}, model="tiny"))
    merged = json.loads((tmp_path / RUN_FILE).read_text())
    assert merged["methods"] == {"plain": {"class": "Plain"}, "greedy": {"class": "Greedy"}}
    assert merged["model"] == "tiny"


def test_run_file_refuses_other_settings_and_names_them(tmp_path):
    _check_run_file(tmp_path, _run({"plain": {"class": "Plain", "n": 1}}, model="tiny"))
    with pytest.raises(ValueError) as info:
        _check_run_file(tmp_path, _run({"plain": {"class": "Plain", "n": 2}}, model="other"))
    assert f"{tmp_path} holds a run with other settings (model, plain differ)" in str(info.value)
    assert str(info.value).endswith("choose another --out.")
    with pytest.raises(ValueError, match=r"\(prompts differ\)"):
        _check_run_file(tmp_path, {**_run({}, model="tiny"), "prompts": ["q"]})
    unchanged = json.loads((tmp_path / RUN_FILE).read_text())
    assert unchanged["methods"] == {"plain": {"class": "Plain", "n": 1}}


def test_a_setting_added_since_the_run_is_unchanged_only_at_its_default(tmp_path):
    _check_run_file(tmp_path, _run({"nulltta": {"class": "NullTTA", "n_max": 5}}))
    grown = {"class": "NullTTA", "n_max": 5, "inner_steps_order": "ramp_up"}
    defaults = {"nulltta": {"n_max": 25, "inner_steps_order": "ramp_up"}}
    _check_run_file(tmp_path, _run({"nulltta": grown}), defaults)  # resumes
    stored = json.loads((tmp_path / RUN_FILE).read_text())["methods"]["nulltta"]
    assert stored == grown
    with pytest.raises(ValueError, match=r"\(nulltta differ\)"):
        changed = {**grown, "inner_steps_order": "ramp_down"}
        _check_run_file(tmp_path, _run({"nulltta": changed}), defaults)
    with pytest.raises(ValueError, match=r"\(nulltta differ\)"):  # n_max stored: no default used
        _check_run_file(tmp_path, _run({"nulltta": {**grown, "n_max": 25}}), defaults)


def test_default_settings_are_the_dataclass_defaults():
    from nulltta.bench.methods import make_method

    method = make_method("nulltta:n_max=55")
    assert method.default_settings()["n_max"] == 25
    assert method.default_settings()["inner_steps_order"] is None  # the model's
    assert method.settings()["n_max"] == 55
