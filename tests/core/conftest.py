from __future__ import annotations

import pytest

from nulltta.testing import tiny_stable_diffusion_pipeline


@pytest.fixture(scope="session")
def tiny_pipe():
    """A tiny random-weight StableDiffusionPipeline, shared by the session (never modified)."""
    return tiny_stable_diffusion_pipeline(seed=0)


@pytest.fixture
def fast_kwargs():
    """Settings that make one fit take well under a second on the tiny pipeline."""
    return {"num_inference_steps": 8, "n_min": 1, "n_max": 3, "progress": False}


@pytest.fixture(scope="session")
def embedded_pipe():
    """The embedded model (trained weights: its UNet responds to the text), loaded once."""
    from nulltta.shapes.model import load_embedded_pipeline

    return load_embedded_pipeline()
