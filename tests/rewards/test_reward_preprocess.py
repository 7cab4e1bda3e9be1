"""Torch-only preprocessing against torchvision (tensors) and PIL (the references' path)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, InterpolationMode, Resize, ToTensor
from torchvision.transforms import functional as TF

from nulltta.rewards.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    center_crop,
    normalize,
    pad_to_square,
    resize,
    resize_longest_side_pad,
    resize_shortest_side_center_crop,
)

SHAPES = [(40, 56), (57, 33), (32, 32), (20, 30), (96, 64)]


def _pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray((image * 255).round().byte().permute(1, 2, 0).numpy())


def _hps_resize_max_size(image: torch.Tensor, size: int) -> torch.Tensor:
    """HPSv2's ``ResizeMaxSize(size, fill=0)`` re-stated on a (3, H, W) tensor."""
    height, width = image.shape[1:]
    scale = size / float(max(height, width))
    new_size = [round(dim * scale) for dim in (height, width)]
    image = TF.resize(image, new_size, InterpolationMode.BICUBIC, antialias=True)
    pad_h, pad_w = size - new_size[0], size - new_size[1]
    return TF.pad(image, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_shortest_side_crop_matches_torchvision_exactly(shape):
    x = torch.rand(2, 3, *shape)
    ours = resize_shortest_side_center_crop(x, 32)
    ref = CenterCrop(32)(Resize(32, InterpolationMode.BICUBIC, antialias=True)(x))
    assert ours.shape == (2, 3, 32, 32)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_longest_side_pad_matches_hps_resize_max_size(shape):
    x = torch.rand(1, 3, *shape)
    ours = resize_longest_side_pad(x, 32)
    ref = _hps_resize_max_size(x[0], 32)[None]
    assert ours.shape == (1, 3, 32, 32)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_longest_side_pad_places_black_bars_around_the_centre():
    out = resize_longest_side_pad(torch.ones(1, 3, 20, 40), 32)
    # 20x40 -> 16x32, 8 rows of padding above and 8 below.
    assert out[..., :8, :].abs().max() == 0
    assert out[..., 24:, :].abs().max() == 0
    torch.testing.assert_close(out[..., 8:24, :], torch.ones(1, 3, 16, 32))


@pytest.mark.parametrize("shape", [(40, 56), (57, 33), (96, 64)])
def test_resize_agrees_with_pil_within_rounding(shape):
    """PIL works on uint8 and clips between its two passes: close, not exact.

    Tolerance: mean |diff| < 0.002 (half a uint8 step) on noise images.
    """
    x = torch.randint(0, 256, (1, 3, *shape)).float() / 255
    ours = resize_shortest_side_center_crop(x, 32).clamp(0, 1)
    ref = ToTensor()(CenterCrop(32)(Resize(32, InterpolationMode.BICUBIC)(_pil(x[0]))))
    assert (ours[0] - ref).abs().mean() < 2e-3


def test_resize_agrees_with_pil_on_a_smooth_image():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 300), torch.linspace(0, 1, 200), indexing="ij")
    x = torch.stack([yy, xx, yy * xx])[None]
    ours = resize_shortest_side_center_crop(x, 32)
    ref = ToTensor()(CenterCrop(32)(Resize(32, InterpolationMode.BICUBIC)(_pil(x[0]))))
    assert (ours[0] - ref).abs().max() < 5e-3  # about 1.3 uint8 steps


def test_resize_is_identity_at_the_target_size_and_keeps_gradients():
    x = torch.rand(1, 3, 32, 32)
    assert resize(x, (32, 32)) is x
    y = torch.rand(1, 3, 48, 40, requires_grad=True)
    resize_longest_side_pad(y, 32).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_normalize_is_the_clip_affine_map():
    x = torch.rand(2, 3, 4, 4)
    out = normalize(x)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x - mean) / std)
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert CLIP_STD == (0.26862954, 0.26130258, 0.27577711)
    with pytest.raises(ValueError, match="one value per channel"):
        normalize(x, mean=(0.5,), std=(0.5,))


def test_center_crop_and_pad_offsets_and_errors():
    x = torch.arange(5 * 7, dtype=torch.float32).view(1, 1, 5, 7)
    torch.testing.assert_close(center_crop(x, 3), x[..., 1:4, 2:5])
    padded = pad_to_square(torch.ones(1, 1, 3, 6), 6, fill=0.5)
    assert padded.shape == (1, 1, 6, 6)
    assert padded[0, 0, 0, 0] == 0.5 and padded[0, 0, 1, 0] == 1  # one row above, two below
    assert padded[0, 0, 4, 0] == 0.5
    with pytest.raises(ValueError, match="cannot crop"):
        center_crop(x, 6)
    with pytest.raises(ValueError, match="cannot pad"):
        pad_to_square(x, 4)
    with pytest.raises(ValueError, match="shape"):
        resize(torch.rand(3, 8, 8), (4, 4))
    with pytest.raises(ValueError, match="positive"):
        resize(torch.rand(1, 3, 8, 8), (0, 4))
