"""The tiny random models the tests build: same seed, same weights; overrides apply."""

from __future__ import annotations

import torch

from nulltta.testing import tiny_unet, tiny_vae


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
