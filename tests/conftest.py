"""Shared test set-up: one thread, seeded RNGs, tiny pipelines."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from tqdm import tqdm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models run fastest on one thread, and two busy thread pools on a
# two-core machine slow each other down tenfold.
torch.set_num_threads(1)
# tqdm's default lock is a multiprocessing semaphore shared with forked children; a
# child killed while holding it (as mutmut kills a mutant's test run on a timeout)
# would block every later progress bar, so the tests use a lock of their own.
tqdm.set_lock(threading.RLock())


@pytest.fixture(scope="session")
def load_benchmark():
    """``load_benchmark(name)`` imports ``benchmarks/<name>.py`` (the scripts are not a package).

    The folder goes on ``sys.path``, as it does for ``python benchmarks/<name>.py``,
    so that a script's imports of its sibling modules resolve.
    """
    folder = Path(__file__).resolve().parent.parent / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA device")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
