"""The UNet's training target and loss weight, per prediction type."""

from __future__ import annotations

import pytest
import torch

from nulltta.equations import to_epsilon
from nulltta.shapes.components import build_scheduler
from nulltta.shapes.train_model import PREDICTION_TYPES, diffusion_target, loss_weight


@pytest.fixture
def draw():
    gen = torch.Generator().manual_seed(0)
    latents = torch.randn(6, 4, 8, 8, generator=gen, dtype=torch.float64)
    noise = torch.randn(6, 4, 8, 8, generator=gen, dtype=torch.float64)
    alpha_bar = torch.tensor([0.0047, 0.05, 0.3, 0.5, 0.9, 0.999], dtype=torch.float64)
    return latents, noise, alpha_bar.view(-1, 1, 1, 1)


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_a_perfect_prediction_gives_back_the_noise_at_inference(draw, prediction_type):
    # The target is what sampling's conversion (equations.to_epsilon) inverts:
    # predicting it exactly must give the true eps of x_t.
    latents, noise, alpha_bar = draw
    noisy = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
    target = diffusion_target(latents, noise, alpha_bar, prediction_type)
    eps = torch.stack(
        [
            to_epsilon(target[i], noisy[i], float(a.sqrt()), float((1 - a).sqrt()), prediction_type)
            for i, a in enumerate(alpha_bar.flatten())
        ]
    )
    torch.testing.assert_close(eps, noise, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("prediction_type", "x0_weight"),
    [
        ("epsilon", lambda snr: torch.clamp(snr, max=5.0)),
        ("v_prediction", lambda snr: torch.clamp(snr + 1, max=5.0)),
    ],
)
def test_the_weighted_loss_of_an_x0_error_is_the_stated_x0_weight(draw, prediction_type, x0_weight):
    # Shift x0 by delta at a fixed x_t: the target moves, and the weighted
    # squared error must be x0_weight(SNR) * delta^2, the docstring's claim.
    latents, noise, alpha_bar = draw
    noisy = alpha_bar.sqrt() * latents + (1 - alpha_bar).sqrt() * noise
    delta = 0.1
    shifted = latents + delta
    shifted_noise = (noisy - alpha_bar.sqrt() * shifted) / (1 - alpha_bar).sqrt()
    error = diffusion_target(shifted, shifted_noise, alpha_bar, prediction_type) - diffusion_target(
        latents, noise, alpha_bar, prediction_type
    )
    snr = (alpha_bar / (1 - alpha_bar)).flatten()
    weighted = loss_weight(snr, 5.0, prediction_type) * error.pow(2).mean((1, 2, 3))
    torch.testing.assert_close(weighted, x0_weight(snr) * delta**2, rtol=1e-10, atol=0)


@pytest.mark.parametrize("function", [diffusion_target, loss_weight])
def test_an_unknown_prediction_type_names_the_known_ones(function):
    args = (
        (torch.ones(1), torch.ones(1), torch.ones(1))
        if function is diffusion_target
        else (torch.ones(1), 5.0)
    )
    with pytest.raises(ValueError, match="v_prediction"):
        function(*args, "sample")


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
def test_the_saved_scheduler_says_what_the_unet_predicts(prediction_type):
    scheduler = build_scheduler(prediction_type)
    assert scheduler.config.prediction_type == prediction_type
    assert scheduler.config.beta_schedule == "scaled_linear"
