"""Reading reward checkpoints: weights-only loading, unwrapping and strict key checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nulltta.rewards.checkpoints import (
    extract_state_dict,
    freeze,
    load_checkpoint,
    load_state_dict_checked,
)
from nulltta.rewards.loading import RewardWeightsError


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_extract_state_dict_formats():
    tensors = {"a.weight": torch.ones(2), "b": torch.zeros(1)}
    assert extract_state_dict(tensors).keys() == tensors.keys()
    assert extract_state_dict({"state_dict": tensors, "epoch": 3}).keys() == tensors.keys()
    assert extract_state_dict({"model": tensors}).keys() == tensors.keys()
    ddp = {"state_dict": {f"module.{k}": v for k, v in tensors.items()}}
    assert extract_state_dict(ddp).keys() == tensors.keys()
    with pytest.raises(RewardWeightsError, match="no tensors"):
        extract_state_dict({"epoch": 3, "name": "x"}, path="ckpt.pt")
    with pytest.raises(RewardWeightsError, match="no state dict"):
        extract_state_dict([1, 2])


def test_load_checkpoint_rejects_a_non_checkpoint(tmp_path):
    bad = _file(tmp_path / "ImageReward.pt", "<html>404 Not Found</html>")
    with pytest.raises(RewardWeightsError, match=r"cannot read .*ImageReward\.pt"):
        load_checkpoint(bad, "ImageReward")
    good = tmp_path / "good.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, good)
    assert torch.equal(load_checkpoint(good)["state_dict"]["w"], torch.ones(1))


def test_load_state_dict_checked_reports_mismatches():
    model = nn.Linear(3, 2)
    good = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    load_state_dict_checked(model, {**good, "x.position_ids": torch.zeros(1)}, None, "m",
                            ignore_unexpected=("position_ids",))
    torch.testing.assert_close(model.weight, good["weight"])
    with pytest.raises(RewardWeightsError, match="1 missing keys"):
        load_state_dict_checked(model, {"weight": good["weight"]}, "f.pt", "m")
    with pytest.raises(RewardWeightsError, match="1 unexpected keys"):
        load_state_dict_checked(model, {**good, "extra": torch.ones(1)}, "f.pt", "m")
    with pytest.raises(RewardWeightsError, match=r"shape mismatches.*file \(2, 4\)"):
        load_state_dict_checked(model, {**good, "weight": torch.ones(2, 4)}, "f.pt", "m")


def test_freeze_sets_eval_no_grad_dtype():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    out = freeze(model, torch.bfloat16)
    assert out is model and not model.training and not model[1].training
    assert all(not p.requires_grad and p.dtype == torch.bfloat16 for p in model.parameters())
