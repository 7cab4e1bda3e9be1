"""Fixtures for ShapesBench: the shipped model and scorers, loaded once per session."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from nulltta.shapes.world import ShapeBatch, sample_batch


@pytest.fixture(scope="session")
def pipe() -> StableDiffusionPipeline:
    """The embedded pipeline, loaded offline from the package."""
    from nulltta.shapes.model import load_embedded_pipeline

    return load_embedded_pipeline()


@pytest.fixture(scope="session")
def clean_batch() -> ShapeBatch:
    """Fresh clean images no scorer was trained on (seeds used in training are small)."""
    return sample_batch(600, seed=31_337)


@pytest.fixture
def small_batch() -> ShapeBatch:
    """Eight clean images, with gradients wanted."""
    batch = sample_batch(8, seed=7)
    batch.images = batch.images.clone().requires_grad_(True)
    return batch


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors."""
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])
