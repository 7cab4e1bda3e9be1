from __future__ import annotations

import pytest

from nulltta.rewards import Brightness
from nulltta.testing import tiny_stable_diffusion_pipeline

PROMPT = "a red circle"
STEPS = 6


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny random-weight StableDiffusionPipeline, shared by the session (never modified)."""
    return tiny_stable_diffusion_pipeline(seed=0)


@pytest.fixture
def task(tiny_pipe):
    from nulltta.bench import Task

    return Task(tiny_pipe, PROMPT, 0, Brightness(), num_inference_steps=STEPS)
