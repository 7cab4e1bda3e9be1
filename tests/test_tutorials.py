from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest
from PIL import Image

from nulltta.loading import embedded_model_available

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("[0-9]*.py"))


def _first_alignment(ns, out, folder):
    aligner, plain = ns["aligner"], ns["plain"]
    assert len(aligner.history_) == ns["SCHEDULE"]["num_inference_steps"]
    assert Image.open(folder / "aligned.png").tobytes() == aligner.image_.tobytes()
    assert Image.open(folder / "plain.png").tobytes() == plain.tobytes()
    assert aligner.image_.tobytes() != plain.tobytes()
    assert f"aligned {aligner.reward_:.3f}, plain {aligner.score(plain):.3f}" in out


def _rewards_and_callbacks(ns, out, folder):
    steps = ns["SCHEDULE"]["num_inference_steps"]
    assert len(ns["logger"].rewards) == steps  # the user's callback ran at every step
    # At the last step candidates are decoded and scored directly: the winner is the image.
    assert ns["aligner"].reward_ == pytest.approx(ns["logger"].rewards[-1], abs=1e-4)
    assert ns["black_box"].module_.zeroth_order is True
    assert "zero-order updates: True" in out


def _amortised_sampling(ns, out, folder):
    assert len(ns["amortised"]) == len(ns["SEEDS"])
    assert "same image after save/load: True" in out


def _shapesbench(ns, out, folder):
    import torch

    from nulltta.images import to_tensor
    from nulltta.shapes.gold import measure

    plain = ns["plain"]
    images = torch.cat([to_tensor(image) for image in plain.images_])
    # The tutorial's differentiable reward is the gold segmentation's area.
    expected = measure(images, plain.prompts_).area
    torch.testing.assert_close(ns["covered_area"](images, plain.prompts_), expected)
    assert sorted(ns["curve"]) == [0, *ns["BUDGETS"]]
    assert ns["curve"][0]["gold"] == pytest.approx(
        float(ns["GOLD"](images, plain.prompts_).mean()), abs=1e-6
    )
    assert all("gold" in row for row in ns["sweep"].values())
    assert "covered area: plain" in out and "n_max  0: target" in out


CHECKS = {
    "01_first_alignment.py": _first_alignment,
    "02_rewards_and_callbacks.py": _rewards_and_callbacks,
    "03_amortised_sampling.py": _amortised_sampling,
    "04_shapesbench.py": _shapesbench,
}


@pytest.mark.skipif(not embedded_model_available(), reason="embedded model not installed")
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_and_produces_what_it_says(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NULLTTA_QUICK", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(script.parent))
    sys.modules.pop("_settings", None)  # read NULLTTA_QUICK afresh
    try:
        namespace = runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.modules.pop("_settings", None)
    assert namespace["SCHEDULE"]["num_inference_steps"] == 10  # the quick schedule ran
    CHECKS[script.name](namespace, capsys.readouterr().out, tmp_path)


def test_every_tutorial_has_checks():
    assert len(TUTORIALS) >= 3
    assert sorted(CHECKS) == [p.name for p in TUTORIALS]
