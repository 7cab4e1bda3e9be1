"""Weights resolution order, hub-cache layout, checkpoint formats and the one clear error."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from nulltta.rewards.loading import (
    HF_MODEL_FILES,
    WEIGHTS_DIR_ENV,
    RewardWeightsError,
    RewardWeightsNotFoundError,
    find_pretrained_dir,
    find_weights_file,
    hub_cache_dir,
    resolve_pretrained_dir,
    resolve_weights_file,
)

NAME = "HPS_v2_compressed.pt"
REPO = "xswu/HPSv2"


def _file(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_env_var_name():
    assert WEIGHTS_DIR_ENV == "NULLTTA_WEIGHTS_DIR"


def test_explicit_path_file_or_folder_wins_and_never_falls_back(tmp_path, monkeypatch, hub_cache):
    env_file = _file(tmp_path / "env" / NAME)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(env_file.parent))
    given = _file(tmp_path / "given" / "renamed.pt")
    assert resolve_weights_file(NAME, REPO, given) == given
    folder_file = _file(tmp_path / "folder" / NAME)
    assert resolve_weights_file(NAME, REPO, folder_file.parent) == folder_file
    with pytest.raises(RewardWeightsNotFoundError) as info:
        resolve_weights_file(NAME, REPO, tmp_path / "nowhere", what="HPSv2.0")
    message = str(info.value)
    assert "HPSv2.0" in message and repr(NAME) in message
    assert str(tmp_path / "nowhere") in message and "does not exist" in message
    assert str(env_file.parent) not in message  # the env folder was not consulted


@pytest.mark.parametrize("layout", ["flat", "repo_id", "repo_name"])
def test_env_dir_layouts(tmp_path, monkeypatch, layout):
    sub = {"flat": "", "repo_id": REPO, "repo_name": "HPSv2"}[layout]
    expected = _file(tmp_path / sub / NAME)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert find_weights_file(NAME, REPO).found == expected


def test_env_dir_may_be_a_hub_cache(tmp_path, monkeypatch):
    snapshot = tmp_path / "models--xswu--HPSv2" / "snapshots" / "abc"
    expected = _file(snapshot / NAME)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    assert find_weights_file(NAME, REPO).found == expected


def test_env_dir_comes_before_the_hub_cache(tmp_path, monkeypatch, hub_cache):
    src = _file(tmp_path / "src" / NAME)
    cached = hub_cache(REPO, {NAME: src}) / NAME
    assert resolve_weights_file(NAME, REPO) == cached
    env_file = _file(tmp_path / "env" / NAME)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(env_file.parent))
    assert resolve_weights_file(NAME, REPO) == env_file


def test_hub_cache_prefers_refs_main_then_any_snapshot(tmp_path, hub_cache):
    src = _file(tmp_path / "src" / NAME)
    main = hub_cache(REPO, {NAME: src}, sha="a" * 40)
    assert find_weights_file(NAME, REPO).found == main / NAME
    (main.parent.parent / "refs" / "main").write_text("b" * 40)  # main moved, not downloaded
    assert find_weights_file(NAME, REPO).found == main / NAME
    assert hub_cache_dir() in main.parents


def test_missing_file_error_names_the_file_and_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(RewardWeightsNotFoundError) as info:
        resolve_weights_file(NAME, REPO, what="HPSv2.0")
    err = info.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, RewardWeightsError)
    text = str(err)
    assert repr(NAME) in text and str(tmp_path) in text and str(hub_cache_dir()) in text
    assert "hf download xswu/HPSv2 HPS_v2_compressed.pt" in text
    assert len(err.searched) == 2
    clone = pickle.loads(pickle.dumps(err))
    assert str(clone) == text and clone.searched == err.searched


def test_unset_or_missing_env_dir_is_reported(tmp_path, monkeypatch):
    lookup = find_weights_file(NAME, REPO)
    assert lookup.found is None
    assert any("not set" in line for line in lookup.searched)
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "typo"))
    lookup = find_weights_file(NAME, REPO)
    assert lookup.found is None and "folder does not exist" in lookup.searched[0]


def test_pretrained_dir_needs_config_and_weights(tmp_path, monkeypatch, hub_cache):
    repo = "org/model"
    half = tmp_path / "env" / "org" / "model"
    _file(half / "config.json", "{}")
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "env"))
    lookup = find_pretrained_dir(repo, HF_MODEL_FILES)
    assert lookup.found is None and "config.json" in lookup.searched[0]
    _file(half / "model.safetensors")
    assert resolve_pretrained_dir(repo) == half
    with pytest.raises(RewardWeightsNotFoundError, match="is not a folder"):
        resolve_pretrained_dir(repo, path=half / "config.json")
    monkeypatch.delenv(WEIGHTS_DIR_ENV)
    snapshot = hub_cache(repo, {"config.json": half / "config.json",
                                "pytorch_model.bin": half / "model.safetensors"})
    assert resolve_pretrained_dir(repo) == snapshot
