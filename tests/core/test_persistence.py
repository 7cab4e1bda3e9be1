from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from PIL import Image

from nulltta import NullTextAligner
from nulltta.history import History
from nulltta.persistence import LIVE_ATTRIBUTES, fitted_attributes, load_fitted, save_fitted

PROMPT = "a red circle"


def assert_same(saved, loaded, name):
    """Exact equality, type included, recursing into lists, tuples and dicts."""
    assert type(loaded) is type(saved) or (
        isinstance(saved, Image.Image) and isinstance(loaded, Image.Image)
    ), f"{name}: {type(saved).__name__} came back as {type(loaded).__name__}"
    if isinstance(saved, torch.Tensor):
        assert loaded.dtype == saved.dtype and loaded.shape == saved.shape, name
        assert torch.equal(loaded, saved.detach().cpu()), name
    elif isinstance(saved, Image.Image):
        assert (loaded.mode, loaded.size) == (saved.mode, saved.size), name
        assert loaded.tobytes() == saved.tobytes(), name
    elif isinstance(saved, (list, tuple)) and not isinstance(saved, History):
        assert len(loaded) == len(saved), name
        for i, (a, b) in enumerate(zip(saved, loaded, strict=True)):
            assert_same(a, b, f"{name}[{i}]")
    elif isinstance(saved, dict):
        assert list(loaded) == list(saved), name
        for key in saved:
            assert_same(saved[key], loaded[key], f"{name}[{key!r}]")
    elif isinstance(saved, float) and math.isnan(saved):
        assert math.isnan(loaded), name
    else:
        assert loaded == saved, name


@pytest.fixture
def fitted(tiny_pipe, fast_kwargs):
    return NullTextAligner(tiny_pipe, "brightness", **fast_kwargs).fit(PROMPT)


def test_every_fitted_attribute_round_trips_exactly(fitted, tiny_pipe, tmp_path):
    names = set(fitted_attributes(fitted))
    live = {n for n in vars(fitted) if n.endswith("_") and not n.startswith("_")} - names
    assert live == set(LIVE_ATTRIBUTES)
    assert {"phi_", "latents_", "image_", "reward_", "history_", "config_", "prompt_"} <= names
    fitted.save(tmp_path / "run")
    loaded = NullTextAligner.load(tmp_path / "run", pipeline=tiny_pipe)
    assert set(fitted_attributes(loaded)) == names
    for name in names:
        assert_same(getattr(fitted, name), getattr(loaded, name), name)
    assert loaded.get_params()["n_max"] == fitted.n_max and loaded.reward == "brightness"


def test_a_fit_of_several_prompts_round_trips_exactly(tiny_pipe, fast_kwargs, tmp_path):
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs)
    aligner.fit([PROMPT, "a blue square"], seeds=[0, 3])
    names = set(fitted_attributes(aligner))
    assert {"phis_", "images_", "rewards_", "histories_", "prompts_", "seeds_"} <= names
    save_fitted(aligner, tmp_path)
    assert (tmp_path / "images" / "001.png").is_file()
    _, loaded = load_fitted(tmp_path)
    assert set(loaded) == names
    for name in names:
        assert_same(getattr(aligner, name), loaded[name], name)


def test_the_saved_folder_is_readable(fitted, tmp_path):
    save_fitted(fitted, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {
        "config.json",
        "fitted.safetensors",
        "history.json",
        "image.png",
    }
    state = json.loads((tmp_path / "config.json").read_text())
    assert state["fitted"]["reward_"] == {"kind": "json", "value": fitted.reward_}
    assert state["fitted"]["prompt_"]["value"] == PROMPT
    assert state["fitted"]["config_"]["value"]["n_max"] == fitted.config_.n_max
    assert json.loads((tmp_path / "history.json").read_text()) == list(fitted.history_)


def test_lists_of_every_kind_round_trip_without_knowing_their_names(fitted, tmp_path):
    image = fitted.image_
    gray = image.convert("L")
    fitted.images_ = [image, gray]
    fitted.phis_ = [fitted.phi_, fitted.phi_[:2].half()]
    fitted.histories_ = [History(fitted.history_[:2]), History()]
    fitted.rewards_ = [0.25, float("nan"), -1.0]
    fitted.mixed_ = ((1, 2), [torch.arange(3)], {"a": image, "b": None})
    fitted.configs_ = [fitted.config_, dataclasses.replace(fitted.config_, n_max=7)]
    save_fitted(fitted, tmp_path)
    assert (tmp_path / "images" / "001.png").is_file()
    _, loaded = load_fitted(tmp_path)
    assert set(loaded) == set(fitted_attributes(fitted))
    for name, value in fitted_attributes(fitted).items():
        assert_same(value, loaded[name], name)


def test_a_value_it_cannot_save_raises_with_the_attribute_name(fitted, tmp_path):
    fitted.generator_ = torch.Generator()
    with pytest.raises(TypeError, match="generator_"):
        save_fitted(fitted, tmp_path)
    del fitted.generator_
    fitted.scores_ = [object()]
    with pytest.raises(TypeError, match=r"scores_\.0"):
        save_fitted(fitted, tmp_path)


def test_a_folder_of_format_1_still_loads(fitted, tmp_path):
    from safetensors.torch import save_file

    save_file(
        {"phi": fitted.phi_.contiguous(), "latents": fitted.latents_.contiguous()},
        tmp_path / "phi.safetensors",
    )
    state = {
        "params": {"n_max": fitted.n_max},
        "prompt": fitted.prompt_,
        "timesteps": fitted.timesteps_,
        "resolution": list(fitted.resolution_),
        "reward": fitted.reward_,
        "config": fitted.config_.to_dict(),
    }
    (tmp_path / "config.json").write_text(json.dumps(state))
    fitted.history_.to_json(tmp_path / "history.json")
    fitted.image_.save(tmp_path / "image.png")
    params, loaded = load_fitted(tmp_path)
    assert params == {"n_max": fitted.n_max}
    assert set(loaded) == set(fitted_attributes(fitted))
    for name, value in loaded.items():
        assert_same(getattr(fitted, name), value, name)


def test_loading_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_fitted(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": 99, "params": {}}))
    with pytest.raises(ValueError, match="format 99"):
        load_fitted(tmp_path)
