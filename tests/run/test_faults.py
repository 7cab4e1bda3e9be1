"""The faults a long run meets; after each, nothing finished is lost or corrupted.

Fault injection uses rewards that really raise or really return NaN/inf
(registered under test names), and real signals.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from nulltta.rewards import Reward, register_reward

from .conftest import (
    assert_same_run,
    kill_group,
    manifest_rows,
    nulltta_command,
    run_args,
    run_in_process,
    subprocess_env,
)


class _PromptFaultReward(Reward):
    """Mean brightness, except on prompts naming ``word``, where it fails as told."""

    requires_prompts = True

    def __init__(self, faults: dict[str, str]) -> None:
        super().__init__()
        self.faults = faults

    def score(self, images, prompts):
        scores = images.mean(dim=(1, 2, 3))
        for word, fault in self.faults.items():
            hit = torch.tensor([word in p for p in prompts], device=images.device)
            if fault == "raise" and bool(hit.any()):
                raise ValueError(f"this reward cannot score a {word}")
            if fault == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            if fault in ("nan", "inf"):
                scores = torch.where(hit, torch.full_like(scores, float(fault)), scores)
        return scores


register_reward("test-non-finite", "NaN on blue prompts, inf on green ones")(
    lambda: _PromptFaultReward({"blue": "nan", "green": "inf"})
)
register_reward("test-raises-on-dog", "raises on prompts naming a dog")(
    lambda: _PromptFaultReward({"dog": "raise"})
)
register_reward("test-out-of-memory", "always runs out of memory")(
    lambda: _PromptFaultReward({"": "oom"})
)


def _assert_finished_images_are_whole(out: Path) -> int:
    """Every row of an interrupted run names a whole PNG with the recorded bytes; count them."""
    from nulltta.jsonl import read_rows
    from nulltta.run.files import sha256

    rows = read_rows(out / "rows" / "rank-00000.jsonl")
    for row in rows:
        data = (out / row["file"]).read_bytes()
        assert sha256(data) == row["sha256"]
        with Image.open(out / row["file"]) as image:
            image.load()
    assert not list(out.rglob("*.tmp"))
    return len(rows)


def _wait_for_rows(out: Path, process: subprocess.Popen | None = None, timeout: float = 900.0):
    """Return once the run has finished an image (or has ended)."""
    rows = out / "rows" / "rank-00000.jsonl"
    deadline = time.monotonic() + timeout
    while not (rows.exists() and rows.stat().st_size > 0):
        if process is not None and process.poll() is not None:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the run wrote no row")
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_mid_run_then_resume_equals_an_uninterrupted_run(
    reference_run, prompts_file, tiny_model, tmp_path
):
    out = tmp_path / "out"
    process = subprocess.Popen(
        nulltta_command() + run_args(out, prompts_file, tiny_model),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_for_rows(out, process)
        process.send_signal(signal.SIGTERM)  # to the command, as `kill PID` would
        output, _ = process.communicate(timeout=600)
    finally:
        kill_group(process)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "stopped by SIGTERM" in output
    finished = _assert_finished_images_are_whole(out)
    assert 0 < finished < 12
    assert len(manifest_rows(out)) == finished  # the manifest lists what was finished
    assert run_in_process(out, prompts_file, tiny_model) == 0
    assert_same_run(out, reference_run)


def test_sigint_mid_run_then_resume_equals_an_uninterrupted_run(
    reference_run, prompts_file, tiny_model, tmp_path, capsys
):
    out = tmp_path / "out"
    running = threading.Event()
    running.set()

    def interrupt_after_the_first_image() -> None:
        _wait_for_rows(out)
        if running.is_set():
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the main thread gets it

    watcher = threading.Thread(target=interrupt_after_the_first_image, daemon=True)
    watcher.start()
    code = run_in_process(out, prompts_file, tiny_model)
    running.clear()
    watcher.join()
    assert code == 130
    assert "stopped by SIGINT" in capsys.readouterr().err
    assert 0 < _assert_finished_images_are_whole(out) < 12
    assert run_in_process(out, prompts_file, tiny_model) == 0
    assert_same_run(out, reference_run)


def test_a_run_killed_at_the_worst_moments_resumes_to_the_same_files(
    copy_of_reference, reference_run, prompts_file, tiny_model
):
    out = copy_of_reference
    rows = out / "rows" / "rank-00000.jsonl"
    lines = rows.read_bytes().splitlines(keepends=True)
    # Killed while appending the 10th row, after writing image 10 and before 11 and 12:
    rows.write_bytes(b"".join(lines[:9]) + lines[9][: len(lines[9]) // 2])
    (out / "images" / "p0005-s1.png").unlink()
    (out / "images" / ".p0005-s1.png.k1ll3d.tmp").write_bytes(b"\x89PNG half")
    (out / "plain" / "p0001-s0.png").unlink()  # killed before the end of the run
    for name in ("manifest.jsonl", "summary.md", "grid.png"):
        (out / name).unlink()
    assert run_in_process(out, prompts_file, tiny_model) == 0
    assert_same_run(out, reference_run)


def test_a_changed_image_is_made_again(copy_of_reference, reference_run, prompts_file, tiny_model):
    (copy_of_reference / "images" / "p0002-s0.png").write_bytes(b"not the image the row names")
    assert run_in_process(copy_of_reference, prompts_file, tiny_model) == 0
    assert_same_run(copy_of_reference, reference_run)


def test_non_finite_rewards_skip_inner_steps_and_flag_the_image(prompts_file, tiny_model, tmp_path):
    out = tmp_path / "out"
    assert run_in_process(out, prompts_file, tiny_model, "--reward", "test-non-finite") == 0
    rows = {row["key"]: row for row in manifest_rows(out)}
    for key in ("p0001-s0", "p0001-s1", "p0002-s0", "p0002-s1"):  # blue: NaN, green: inf
        row = rows[key]
        assert row["status"] == "flagged"
        # every inner step of these trajectories has a non-finite objective: T=4 steps, 1-2 each
        assert row["skipped_steps"] >= 4
        assert "skipped-inner-steps" in row["flags"] and "non-finite-reward" in row["flags"]
        assert (out / row["file"]).exists()
    for key in ("p0000-s0", "p0003-s1", "p0005-s0"):  # batched with them, or not: untouched
        assert rows[key]["status"] == "ok" and rows[key]["skipped_steps"] == 0
    summary = (out / "summary.md").read_text()
    assert "## Flagged images" in summary and "| p0001-s0 | a blue square | 0 |" in summary


def test_a_reward_that_raises_fails_that_image_only(prompts_file, tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_in_process(out, prompts_file, tiny_model, "--reward", "test-raises-on-dog") == 1
    rows = {row["key"]: row for row in manifest_rows(out)}
    for key in ("p0004-s0", "p0004-s1"):  # the dog prompt's batch
        assert rows[key]["status"] == "failed" and rows[key]["file"] is None
        assert rows[key]["error"] == "ValueError: this reward cannot score a dog"
        assert "Traceback" in rows[key]["traceback"]
    others = [row for key, row in rows.items() if not key.startswith("p0004")]
    assert len(others) == 10 and {row["status"] for row in others} == {"ok"}
    assert "1 flagged" not in capsys.readouterr().err
    summary = (out / "summary.md").read_text()
    assert (
        "| p0004-s0 | a dog on a sofa | 0 | ValueError: this reward cannot score a dog |" in summary
    )
    # A rerun tries the failed images again (the error may have been passing), and only them.
    before = len((out / "rows" / "rank-00000.jsonl").read_text().splitlines())
    assert run_in_process(out, prompts_file, tiny_model, "--reward", "test-raises-on-dog") == 1
    after = len((out / "rows" / "rank-00000.jsonl").read_text().splitlines())
    assert after == before + 2


def test_a_batch_that_raises_is_retried_one_image_at_a_time(prompts_file, tiny_model, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on a sofa\na dog on a sofa\na red circle\n")
    out = tmp_path / "out"
    args = ("--reward", "test-raises-on-dog", "--seeds", "0", "--batch-size", "3")
    assert run_in_process(out, prompts, tiny_model, *args) == 1
    rows = manifest_rows(out)
    assert [row["status"] for row in rows] == ["ok", "failed", "ok"]
    assert [row["batch_size"] for row in rows] == [1, 1, 1]  # the batch of 3 raised


def test_out_of_memory_stops_the_run_with_one_clear_error(
    prompts_file, tiny_model, tmp_path, capsys
):
    out = tmp_path / "out"
    assert run_in_process(out, prompts_file, tiny_model, "--reward", "test-out-of-memory") == 2
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and "Traceback" not in error
    assert "ran out of memory aligning 2 image(s) at once" in error
    for fix in ("--batch-size", "gradient checkpointing", "decode_scale"):
        assert fix in error
    assert not list((out / "images").glob("*.png")) if (out / "images").exists() else True


def test_out_of_memory_outside_a_batch_gives_the_same_clear_error(
    prompts_file, tiny_model, tmp_path, capsys
):
    args = ("--heldout", "test-out-of-memory")  # the held-out scoring after the batch
    assert run_in_process(tmp_path / "out", prompts_file, tiny_model, *args) == 2
    error = capsys.readouterr().err
    assert "ran out of memory outside a batch" in error and "Traceback" not in error
    assert "--batch-size" in error and "decode_scale" in error
