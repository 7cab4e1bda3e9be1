"""Fixtures of the ``nulltta run`` tests: a tiny model folder, prompts files, a reference run.

Runs use the tiny random-weight pipeline saved as a diffusers folder (it
loads offline in a second) and short schedules, so one run takes a few
seconds on a CPU; what they check (bytes equal, rows complete, errors
named) does not depend on the weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nulltta.cli import main
from nulltta.testing import tiny_stable_diffusion_pipeline

# What Fabric's launcher and the cluster launchers set; a value left over
# from an in-process run would make the next run think it was launched
# externally, so every test starts without them.
LAUNCHER_VARIABLES = (
    "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT",
    "GROUP_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED",
)  # fmt: skip

# Fields of a manifest row that say when and where an image was made, not what it is.
VOLATILE_FIELDS = ("attempt", "finished_at", "batch_seconds", "rank")

PROMPTS_TEXT = """# the reference prompt set
a red circle
a blue square

a green circle
a red circle
a cat on a sofa
a dog on a sofa
a red house
"""
FAST = ["--steps", "4", "--n-min", "1", "--n-max", "2"]


def _clean_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [*LAUNCHER_VARIABLES, *(k for k in os.environ if k.startswith("SLURM_"))]:
        monkeypatch.setenv(key, "")  # recorded, so teardown removes what a run sets
        monkeypatch.delenv(key)
    # One thread, as the test suite runs; Fabric would otherwise pick its own count.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_launcher_env(monkeypatch)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline as a diffusers folder (``--model PATH``)."""
    folder = tmp_path_factory.mktemp("tiny-model") / "model"
    tiny_stable_diffusion_pipeline(seed=0).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text(PROMPTS_TEXT)
    return path


def run_args(out: Path, prompts: Path, model: Path, *extra: str) -> list[str]:
    """``nulltta run`` arguments of the reference settings, plus ``extra``."""
    return [
        "run", "--prompts", str(prompts), "--seeds", "0", "1", "--batch-size", "2",
        "--accelerator", "cpu", "--out", str(out), "--model", str(model),
        "--reward", "brightness", "--heldout", "contrast", "--grid-prompts", "2",
        "--quiet", *FAST, *extra,
    ]  # fmt: skip


def run_in_process(out: Path, prompts: Path, model: Path, *extra: str) -> int:
    """Run ``nulltta run`` in this process (one device); its exit status."""
    return main(run_args(out, prompts, model, *extra))


def nulltta_command() -> list[str]:
    """The ``nulltta`` console script: Fabric starts the other ranks by running it again."""
    return [sys.executable, str(Path(sys.executable).with_name("nulltta"))]


def run_command(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``nulltta ARGS`` in its own process group, all of which is killed on a timeout.

    Fabric's extra ranks are children of the command; killing only the
    command would leave them running.
    """
    process = subprocess.Popen(
        nulltta_command() + args,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        kill_group(process)
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def kill_group(process: subprocess.Popen) -> None:
    """Kill what is left of ``process``'s group (started with ``start_new_session``)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, tiny_model: Path, prompts_file: Path) -> Path:
    """An uninterrupted one-process run with the reference settings (never modified)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clean_launcher_env(monkeypatch)
        assert run_in_process(out, prompts_file, tiny_model) == 0
    return out


@pytest.fixture
def copy_of_reference(reference_run: Path, tmp_path: Path) -> Iterator[Path]:
    out = tmp_path / "out"
    shutil.copytree(reference_run, out)
    yield out


def manifest_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def run_files(out: Path) -> set[str]:
    """Every file of a run folder but the per-rank row files (their number follows the ranks)."""
    return {
        str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.parent.name != "rows"
    }


def assert_same_run(actual: Path, expected: Path) -> None:
    """Same files, same bytes (PNGs, summary, grid, run.json), same rows but for timing."""
    assert run_files(actual) == run_files(expected)
    for name in sorted(run_files(expected) - {"manifest.jsonl"}):
        assert (actual / name).read_bytes() == (expected / name).read_bytes(), name

    def stable(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k not in VOLATILE_FIELDS} for row in rows]

    assert stable(manifest_rows(actual)) == stable(manifest_rows(expected))
