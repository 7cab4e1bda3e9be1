"""``nulltta rewards``: names, needs, and found / not found with where."""

from __future__ import annotations

from nulltta.rewards.listing import format_reward_table, reward_rows
from nulltta.rewards.registry import RewardSpec, reward_specs


def _row(rows, name):
    return next(r for r in rows if r["name"] == name)


def test_nothing_found_on_a_bare_machine():
    rows = reward_rows()
    for name in ["pickscore", "hpsv2", "hpsv2.1", "aesthetic", "imagereward", "clipscore"]:
        row = _row(rows, name)
        assert row["status"] == "not found", name
        assert "NULLTTA_WEIGHTS_DIR" in row["where"]
        assert row["needs"] != "nothing"
    assert _row(rows, "jpeg")["status"] == "found"
    assert "HPS_v2.1_compressed.pt" in _row(rows, "hpsv2.1")["needs"]


def test_everything_found_in_the_weights_dir(use_weights_dir):
    rows = reward_rows()
    for name in ["pickscore", "hpsv2", "hpsv2.1", "aesthetic", "imagereward", "clipscore"]:
        row = _row(rows, name)
        assert row["status"] == "found", (name, row["where"])
        assert str(use_weights_dir) in row["where"]


def test_table_lists_every_reward_and_survives_a_broken_check():
    def broken() -> tuple[bool, str]:
        raise OSError("disk on fire")

    specs = reward_specs() + [RewardSpec("broken", lambda: None, "a broken check", "x", broken)]
    table = format_reward_table(specs)
    lines = table.splitlines()
    assert lines[0].split() == ["reward", "status", "description"]
    for spec in specs:
        assert any(line.startswith(spec.name + " ") for line in lines), spec.name
    assert "error" in table and "disk on fire" in table
    assert "needs: yuvalkirstain/PickScore_v1" in table
    assert all(len(line) <= 100 for line in lines[:-1])
