from __future__ import annotations

import pytest

from nulltta.testing import tiny_stable_diffusion_pipeline
from nulltta.testing_families import tiny_sd3_pipeline, tiny_sdxl_pipeline

PROMPT = "a red circle on a white background"


@pytest.fixture(scope="session")
def sdxl_pipe():
    """Tiny random-weight SDXL pipeline (epsilon, force_zeros_for_empty_prompt); never modified."""
    return tiny_sdxl_pipeline(seed=0)


@pytest.fixture(scope="session")
def sd3_pipe():
    """Tiny random-weight SD3 pipeline (rectified flow, shift 3, with a tiny T5)."""
    return tiny_sd3_pipeline(seed=0)


@pytest.fixture(scope="session")
def sd_pipes():
    """Tiny SD pipelines with the same weights, one per prediction type."""
    return {
        kind: tiny_stable_diffusion_pipeline(seed=0, prediction_type=kind)
        for kind in ("epsilon", "v_prediction", "sample")
    }


@pytest.fixture
def fast_kwargs():
    return {"num_inference_steps": 6, "n_min": 1, "n_max": 3, "progress": False}


def _monte_carlo_kl(samples_p, mean_p, mean_q):
    """KL(N(mean_p, s^2) || N(mean_q, s^2)) from samples of p; s is estimated from them."""
    deviations = (samples_p - mean_p).double()
    variance = deviations.pow(2).mean()
    log_ratio = (
        (samples_p.double() - mean_q.double()).pow(2).flatten(1).sum(1)
        - deviations.pow(2).flatten(1).sum(1)
    ) / (2 * variance)
    return float(log_ratio.mean()), float(variance.sqrt())


@pytest.fixture
def monte_carlo_kl():
    """``(kl, std) = monte_carlo_kl(samples, mean_p, mean_q)``, std estimated from the samples."""
    return _monte_carlo_kl
