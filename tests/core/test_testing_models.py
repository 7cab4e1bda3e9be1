"""The tiny random models the tests build: same seed, same weights; overrides apply."""

from __future__ import annotations

import pytest
import torch

from nulltta.testing import sd_ddim_scheduler, tiny_unet, tiny_vae


def test_tiny_unet_is_seeded_and_takes_overrides():
    first, again = tiny_unet(3, 8, cross_attention_dim=8), tiny_unet(3, 8, cross_attention_dim=8)
    for a, b in zip(first.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)
    other = tiny_unet(4, 8, cross_attention_dim=8)
    assert not torch.equal(next(first.parameters()), next(other.parameters()))
    wide = tiny_unet(3, 8, cross_attention_dim=16, use_linear_projection=True)
    assert wide.config.cross_attention_dim == 16 and wide.config.use_linear_projection
    sample = torch.randn(1, 4, 8, 8)
    out = first(sample, 10, encoder_hidden_states=torch.randn(1, 5, 8)).sample
    assert out.shape == sample.shape


def test_tiny_vae_doubles_the_latent_size():
    vae = tiny_vae(0)
    image = vae.decode(torch.randn(1, 4, 8, 8)).sample
    assert image.shape == (1, 3, 16, 16)


def test_sd_ddim_scheduler_has_the_sd1_schedule_and_takes_overrides():
    scheduler = sd_ddim_scheduler(prediction_type="v_prediction")
    betas = scheduler.betas
    assert betas[0].item() == pytest.approx(0.00085, rel=1e-5)
    assert betas[-1].item() == pytest.approx(0.012, rel=1e-5)
    # scaled_linear: the square roots of the betas are evenly spaced
    steps = betas.sqrt().diff()
    torch.testing.assert_close(steps, steps.mean().expand_as(steps), rtol=1e-3, atol=1e-7)
    assert scheduler.config.steps_offset == 1 and not scheduler.config.set_alpha_to_one
    assert scheduler.config.prediction_type == "v_prediction"
