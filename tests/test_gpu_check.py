"""The FLOP count and the GPU check script, on CPU with tiny settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def flops(load_benchmark):
    return load_benchmark("flops")


@pytest.fixture(scope="module")
def tiny_counts(flops):
    return {
        device: flops.measure(16, torch.device(device), tiny=True) for device in ("meta", "cpu")
    }


def test_meta_device_counts_what_the_cpu_runs(tiny_counts):
    meta, cpu = tiny_counts["meta"]["parts"], tiny_counts["cpu"]["parts"]
    for name in meta:
        assert meta[name]["forward"] == cpu[name]["forward"] > 0, name
        assert meta[name]["backward"] == cpu[name]["backward"] > 0, name
    # Attention is counted (as matmuls) on the CPU too, not dropped by its fused kernel.
    assert cpu["reward"]["forward_by_op"].get("aten.bmm", 0) > 0


def test_release_unet_runs_two_rows_and_frozen_weights_get_no_gradient(flops, tiny_counts):
    parts = tiny_counts["meta"]["parts"]
    assert parts["unet_release"]["forward"] == 2 * parts["unet"]["forward"]
    assert parts["unet_release"]["backward"] == 2 * parts["unet"]["backward"]
    # A weight gradient would add a second convolution_backward product per layer: the
    # VAE's backward to its input costs about its forward, not twice it.
    vae = parts["vae"]
    assert vae["backward"] < 1.2 * vae["forward"]
    summary = flops.summarise(tiny_counts["meta"], flops.PEAKS_TFLOPS["h200-sxm"])
    assert summary["release_over_ours"] > 1
    assert summary["schedule"]["inner_steps"] == 1520


# --- scripts/gpu_check.sh, run with a stand-in for python ---------------------------
SCRIPT = REPO / "scripts" / "gpu_check.sh"
FAKE_PYTHON = """#!/usr/bin/env python3
import json, os, sys, time
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
time.sleep(float(os.environ.get("FAKE_SLEEP", "0")))
sys.exit(int(os.environ.get("FAKE_RC", "0")))
"""
PARTS = ["prep", "a_gpu_tests", "b_main_job", "e1_image", "f1_inner", "g_floor",
         "c_throughput", "d_vs_release", "e2_compile", "f2_compile", "g_floor2"]  # fmt: skip


def _run_script(tmp_path, **env):
    import os
    import subprocess

    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    environment = {**os.environ, "PYTHON": str(fake), "FAKE_LOG": str(log),
                   "WORK": str(tmp_path / "work"), "CPU_SMOKE": "0", **env}  # fmt: skip
    environment.pop("OUT", None)
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    import json

    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    summary = (tmp_path / "out" / "summary.txt").read_text().splitlines()
    return done, calls, summary


def _flags(path: Path) -> set[str]:
    import re

    return set(re.findall(r'add_argument\(\s*"(--[a-z0-9-]+)"', path.read_text()))


def test_gpu_check_parses():
    import subprocess

    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_gpu_check_runs_every_part_even_when_each_fails(tmp_path):
    done, calls, summary = _run_script(tmp_path, FAKE_RC="3")
    names = [line.split()[0] for line in summary if not line.startswith("total")]
    assert names == PARTS, done.stdout[-2000:]
    assert all("FAILED(rc=3)" in line for line in summary if not line.startswith("total"))
    assert (tmp_path / "out" / "results.tar.gz").is_file()
    assert (tmp_path / "out" / "gpu_check.log").is_file()


def test_gpu_check_commands_use_flags_the_scripts_have(tmp_path, load_benchmark):
    inner_step = load_benchmark("inner_step")
    _, calls, _ = _run_script(tmp_path)
    scripts = {
        "benchmarks/inner_step.py": _flags(REPO / "benchmarks" / "inner_step.py"),
        "benchmarks/throughput.py": _flags(REPO / "benchmarks" / "throughput.py"),
        "benchmarks/vs_release.py": _flags(REPO / "benchmarks" / "vs_release.py"),
    }
    seen = set()
    for argv in calls:
        if argv[0] == "-c":
            compile(argv[1], "<gpu_check snippet>", "exec")  # every inline snippet is valid
            if "nulltta.cli" in argv[1]:
                cli = _flags(REPO / "nulltta" / "cli.py") | _flags(REPO / "nulltta" / "cli_args.py")
                assert {a for a in argv[3:] if a.startswith("--")} <= cli
            continue
        if argv[0] in scripts:
            seen.add(argv[0])
            used = {a for a in argv[1:] if a.startswith("--")}
            assert used <= scripts[argv[0]], (argv[0], used - scripts[argv[0]])
            assert "cuda" in argv
        if argv[0] == "benchmarks/inner_step.py":
            variants = argv[argv.index("--variants") + 1 : argv.index("--json")]
            assert set(variants) <= set(inner_step.VARIANTS)
    assert seen == set(scripts)


def test_gpu_check_cuts_budgets_to_the_time_left_and_skips_the_rest(tmp_path):
    _, calls, summary = _run_script(tmp_path, FAKE_SLEEP="2", GPU_CHECK_SECONDS="20")
    skipped = [line.split()[0] for line in summary if "SKIPPED" in line]
    assert skipped and skipped[-1] == "g_floor2"
    assert len(calls) < len(PARTS)
