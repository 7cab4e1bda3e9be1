"""What each benchmark row and ``run.json`` hold, checked against the saved images.

Written against the mutants of ``nulltta/bench/runner.py`` that the other
runner tests let through (``tests/mutation/runner.cfg``).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from PIL import Image

from nulltta.bench import make_method, run_benchmark
from nulltta.images import to_tensor
from nulltta.rewards import CallableReward

PROMPTS = ["a red circle", "a blue square on a white background"]
SAMPLING = {"num_inference_steps": 3}


def _prompt_reward(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """Brightness plus the prompt's length: wrong if a row is scored with another prompt."""
    lengths = torch.tensor([float(len(p)) for p in prompts], device=images.device)
    return images.mean((1, 2, 3)) + lengths


def _red_fidelity(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    return images[:, 0].mean((1, 2))


def _run(pipe, out, methods, progress=False):
    """One seed of PROMPTS; ``progress=None`` leaves the argument at its default."""
    options = {} if progress is None else {"progress": progress}
    return run_benchmark(
        pipe,
        {spec: make_method(spec) for spec in methods},
        PROMPTS,
        [0],
        CallableReward(_prompt_reward, name="prompt-brightness"),
        out,
        heldout={"red": CallableReward(_red_fidelity, name="red")},
        fidelity=_red_fidelity,
        sampling=SAMPLING,
        description={"model": "tiny"},
        **options,
    )


def test_every_score_is_of_the_saved_image_under_its_own_prompt(tiny_pipe, tmp_path):
    out = tmp_path / "not" / "yet" / "made"
    rows = _run(tiny_pipe, out, ("plain", "best-of-n:n=2"))
    assert len(rows) == 4
    for row in rows:
        label = row["method"].replace(":", "_")
        assert row["image"] == f"images/{label}/p{row['prompt_index']:03d}_s0.png"
        image = to_tensor(Image.open(out / row["image"]))
        prompt = PROMPTS[row["prompt_index"]]
        assert row["prompt"] == prompt
        assert row["target"] == pytest.approx(float(_prompt_reward(image, [prompt])[0]), abs=1e-6)
        red = float(_red_fidelity(image, [prompt])[0])
        assert row["heldout"]["red"] == pytest.approx(red, abs=1e-6)
        assert row["fidelity"] == pytest.approx(red, abs=1e-6)
    best = [r for r in rows if r["method"] == "best-of-n:n=2"]
    assert all(r["reward_calls"] == 2 and r["info"]["n"] == 2 for r in best)
    assert all(r["reward_calls"] == 0 for r in rows if r["method"] == "plain")


def test_run_json_records_the_settings_of_every_method(tiny_pipe, tmp_path):
    _run(tiny_pipe, tmp_path, ("plain", "best-of-n:n=2"))
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["model"] == "tiny" and run["sampling"] == SAMPLING and run["prompts"] == PROMPTS
    for spec in ("plain", "best-of-n:n=2"):
        method = make_method(spec)
        assert run["methods"][spec] == {
            "class": type(method).__name__,
            "follows": method.follows,
            **method.settings(),
        }


def test_a_run_json_without_methods_is_resumed_and_completed(tiny_pipe, tmp_path):
    # As an older run.json, or one edited by hand, may be.
    shared = {"model": "tiny", "sampling": SAMPLING, "prompts": PROMPTS}
    (tmp_path / "run.json").write_text(json.dumps(shared))
    _run(tiny_pipe, tmp_path, ("plain",))
    assert set(json.loads((tmp_path / "run.json").read_text())["methods"]) == {"plain"}


def test_the_progress_bar_counts_images_from_where_a_resume_starts(tiny_pipe, tmp_path, capsys):
    _run(tiny_pipe, tmp_path, ("plain",), progress=False)
    assert capsys.readouterr().err == ""  # progress=False is quiet
    _run(tiny_pipe, tmp_path, ("plain", "best-of-n:n=2"), progress=None)  # on by default
    shown = capsys.readouterr().err
    states = [state for state in re.split(r"[\r\n]", shown) if state.strip()]
    assert re.search(r"\| 2/4 \[", states[0])  # two images were already there
    assert re.search(r"\| 4/4 \[", states[-1]) and re.search(r"\dimg/s", states[-1])
    assert "best-of-n:n=2 p1 s0" in states[-1]
