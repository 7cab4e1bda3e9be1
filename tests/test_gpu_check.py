"""The FLOP count and the GPU check script, on CPU with tiny settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flops():
    return _load("flops")


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
