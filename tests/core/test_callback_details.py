"""The callbacks' documented defaults, argument checks and small helpers (mutants that survived)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nulltta.adapters import make_adapter
from nulltta.callbacks import (
    AlignmentProgressBar,
    GreedySelection,
    KLAnnealing,
    method_callbacks,
    pick_best,
)
from nulltta.callbacks.memory import peak_rss_mb, reset_peak_rss
from nulltta.config import AlignmentConfig
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness


def test_a_nan_candidate_loses_to_negative_scores():
    # NaN counts as minus infinity, not as 0: with every real score below 0 a
    # NaN read as 0 would win.
    nan = float("nan")
    scores = torch.tensor([nan, -0.5, -0.2, nan, -3.0, -1.0])  # rows k * B + b, K = 3, B = 2
    assert pick_best(scores, 3, 2).tolist() == [2, 1]


def test_documented_defaults():
    greedy = GreedySelection()
    assert (greedy.num_candidates, greedy.select_initial_noise) == (3, True)
    assert KLAnnealing().rate == 0.008
    bar = AlignmentProgressBar()
    assert (bar.description, bar.reward_every) == ("Null-TTA", 10)


def test_argument_checks_name_the_bound():
    assert GreedySelection(1).num_candidates == 1  # K = 1 is plain ancestral sampling
    with pytest.raises(ValueError, match=r"num_candidates=0 must be >= 1"):
        GreedySelection(0)
    assert KLAnnealing(0.0).rate == 0.0  # no annealing: lambda2 at full weight
    with pytest.raises(ValueError, match=r"rate=-0.1 must be >= 0"):
        KLAnnealing(-0.1)


def test_method_callbacks_pass_the_initial_noise_setting_on():
    for select in (True, False):
        config = AlignmentConfig(select_initial_noise=select)
        (greedy,) = [c for c in method_callbacks(config) if isinstance(c, GreedySelection)]
        assert greedy.select_initial_noise is select


def test_candidates_keep_the_latents_dtype(tiny_pipe):
    config = AlignmentConfig(num_inference_steps=4, n_min=1, n_max=2).validate()
    module = NullTextModule(make_adapter(tiny_pipe), Brightness(), config)
    module.start_trajectory("a red circle", 16, 16, torch.Generator().manual_seed(0))
    mean = torch.zeros(1, 4, 2, 2, dtype=torch.float64)
    candidates = GreedySelection(3)._draw(module, mean, 1.0)
    assert candidates.dtype == torch.float64 and candidates.shape == (3, 4, 2, 2)


def test_peak_rss_is_in_mib_and_resets():
    assert reset_peak_rss() is True  # Linux: /proc/self/clear_refs
    before = peak_rss_mb()
    block = np.ones(200 * 2**20 // 8)  # 200 MiB, touched
    during = peak_rss_mb()
    assert during - before == pytest.approx(200, rel=0.1)
    del block
    assert reset_peak_rss() is True
    # After a reset the peak is the current size, below the one that held the block.
    assert peak_rss_mb() < during - 150


def test_peak_rss_without_proc_falls_back_to_getrusage_in_the_platforms_unit(monkeypatch):
    import resource

    from nulltta.callbacks import memory

    monkeypatch.setattr(memory, "_STATUS", memory.Path("/nonexistent/status"))
    monkeypatch.setattr(memory, "_CLEAR_REFS", memory.Path("/nonexistent/clear_refs"))
    assert reset_peak_rss() is False
    def maxrss() -> int:  # KiB on Linux, bytes on macOS; it only grows
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    monkeypatch.setattr(memory.sys, "platform", "linux")
    before = maxrss()
    assert before / 1024 <= peak_rss_mb() <= maxrss() / 1024
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    before = maxrss()
    assert before / 2**20 <= peak_rss_mb() <= maxrss() / 2**20


def test_peak_rss_reads_vmhwm_in_kib_and_without_it_getrusage(tmp_path, monkeypatch):
    import resource

    from nulltta.callbacks import memory

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  9999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1024 kB\n")
    monkeypatch.setattr(memory, "_STATUS", status)
    assert memory.peak_rss_mb() == 2.0
    status.write_text("Name:\tpython\n")  # no VmHWM line: getrusage, as without the file
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak = memory.peak_rss_mb()
    assert before <= peak <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
