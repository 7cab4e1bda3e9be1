"""Which built-in callbacks a run gets, and the plain-sampling settings."""

from __future__ import annotations

import torch

from nulltta.callbacks import (
    AlignmentProgressBar,
    FixedNullTrajectory,
    GreedySelection,
    KLAnnealing,
    MemoryProfiler,
    method_callbacks,
)
from nulltta.config import AlignmentConfig
from nulltta.equations import inner_steps_schedule


def _types(callbacks):
    return [type(c) for c in callbacks]


def test_release_settings_get_annealing_then_selection_then_observers():
    extra = FixedNullTrajectory(torch.zeros(2, 1, 4))
    callbacks = method_callbacks(AlignmentConfig(), [extra], profile_memory=True, progress=True)
    assert _types(callbacks) == [
        KLAnnealing,
        GreedySelection,
        FixedNullTrajectory,
        MemoryProfiler,
        AlignmentProgressBar,
    ]
    assert callbacks[0].rate == AlignmentConfig().schedule_rate
    assert callbacks[1].num_candidates == 3


def test_switched_off_settings_drop_their_callbacks():
    config = AlignmentConfig(anneal_kl=False, num_candidates=1)
    assert method_callbacks(config, profile_memory=False) == []
    assert _types(method_callbacks(config)) == [MemoryProfiler]


def test_plain_sampling_has_no_inner_steps_and_one_candidate():
    config = AlignmentConfig(guidance_scale=5.0, kl_weight=0.2, num_inference_steps=30)
    plain = config.plain_sampling()
    assert sum(inner_steps_schedule(30, plain.n_min, plain.n_max, plain.schedule_rate)) == 0
    assert (plain.num_candidates, plain.select_initial_noise) == (1, False)
    assert (plain.guidance_scale, plain.kl_weight, plain.num_inference_steps) == (5.0, 0.2, 30)
    assert _types(method_callbacks(plain, profile_memory=False)) == [KLAnnealing]
    assert config.n_max == 25  # the original is left unchanged
