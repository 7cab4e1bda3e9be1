"""Training stages of the embedded model's ``AutoencoderKL`` (stages 1, 2 and 4).

Stage 1 trains the autoencoder on reconstruction plus a tiny KL term; stage 2
weighs the shape's pixels more so small shapes keep their colour; stage 4
refines the decoder alone once the UNet has been trained on the (then frozen)
latent space. :func:`vae_colour_error` is the metric the model card reports.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

from .components import build_vae
from .world import BACKGROUND_RGB, BACKGROUNDS, COLOR_RGB, COLORS, sample_batch

__all__ = [
    "build_vae_from",
    "latent_scale",
    "log",
    "refine_decoder",
    "train_vae",
    "vae_colour_error",
    "warmup_cosine_lr",
]


def log(message: str) -> None:
    """Print a progress line with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def warmup_cosine_lr(step: int, steps: int, lr: float, warmup: int = 100) -> float:
    """Linear warm-up to ``lr`` over ``warmup`` steps, then cosine decay to ``lr / 10``.

    ``lr_s = lr (s + 1) / warmup`` for ``s < warmup``, else
    ``lr (0.1 + 0.45 (1 + cos(pi p)))`` with ``p = (s - warmup) / (steps - warmup)``.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_vae(
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    kl_weight: float = 1e-6,
    shape_weight: float = 0.0,
    init: AutoencoderKL | None = None,
    decoder_only: bool = False,
) -> AutoencoderKL:
    """Train (or keep training) the autoencoder on fresh world images.

    Parameters
    ----------
    steps, batch_size, lr, seed : int, int, float, int
        Optimisation settings (linear warm-up, cosine decay to ``lr / 10``).
    kl_weight : float, default=1e-6
        Weight of the posterior's KL term.
    shape_weight : float, default=0.0
        Extra loss weight on pixels that differ from the background: shapes
        cover a small part of the image, and without it their colours drift.
    init : AutoencoderKL, optional
        Continue from these weights instead of a fresh model.
    decoder_only : bool, default=False
        Freeze the encoder (so the latent space, and a UNet trained on it,
        stay valid) and train only the decoder.

    Returns
    -------
    AutoencoderKL
        In eval mode, ``scaling_factor`` not yet set.
    """
    torch.manual_seed(seed)
    vae = build_vae() if init is None else init.train()
    bg_rgb = torch.tensor([BACKGROUND_RGB[b] for b in BACKGROUNDS])
    params = [*vae.decoder.parameters(), *vae.post_quant_conv.parameters()]
    if decoder_only:
        vae.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
    else:
        params = list(vae.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(step, steps, lr)
        batch = sample_batch(batch_size, rng)
        x = batch.images * 2 - 1
        with torch.set_grad_enabled(not decoder_only):
            posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        on_shape = (batch.images - bg_rgb[batch.background][:, :, None, None]).abs().amax(1) > 0.02
        weight = 1 + shape_weight * on_shape[:, None].float()
        err = recon - x
        rec = (weight * (err.pow(2) + 0.5 * err.abs())).mean() / weight.mean()
        loss = rec if decoder_only else rec + kl_weight * posterior.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            what = "decoder" if decoder_only else "vae"
            log(f"{what} step {step}/{steps} loss {rec.item():.5f} ({time.time() - start:.0f}s)")
    return vae.eval().requires_grad_(True)


@torch.no_grad()
def vae_colour_error(vae: AutoencoderKL, n: int = 512, seed: int = 12345) -> dict[str, float]:
    """Colour error of VAE reconstructions of clean images, in 0-255 units.

    Returns
    -------
    dict
        ``shape_rgb_err`` and ``background_rgb_err``: mean RGB distance between
        the reconstructed and the true colour, averaged over the shape's
        interior and over the background; ``pixel_mae``: mean absolute error.
    """
    batch = sample_batch(n, seed)
    x = batch.images
    recon = ((vae.decode(vae.encode(x * 2 - 1).latent_dist.mode()).sample + 1) / 2).clamp(0, 1)
    fg = torch.tensor([COLOR_RGB[c] for c in COLORS])[batch.color]
    bg = torch.tensor([BACKGROUND_RGB[b] for b in BACKGROUNDS])[batch.background]
    dist_fg = (x - fg[:, :, None, None]).abs().sum(1)
    dist_bg = (x - bg[:, :, None, None]).abs().sum(1)
    fg_mask = (dist_fg < 1e-4).float()
    bg_mask = (dist_bg < 1e-4).float()

    def region_err(mask: torch.Tensor, truth: torch.Tensor) -> float:
        mean = (recon * mask[:, None]).sum((2, 3)) / mask.sum((1, 2)).clamp_min(1)[:, None]
        return float((mean - truth).norm(dim=1).mean() * 255)

    return {
        "shape_rgb_err": region_err(fg_mask, fg),
        "background_rgb_err": region_err(bg_mask, bg),
        "pixel_mae": float((recon - x).abs().mean() * 255),
    }


@torch.no_grad()
def latent_scale(vae: AutoencoderKL, n: int = 2048, seed: int = 777) -> float:
    """``1 / std`` of the VAE's latents, so scaled latents have unit variance (as in SD)."""
    x = sample_batch(n, seed).images * 2 - 1
    z = torch.cat([vae.encode(chunk).latent_dist.sample() for chunk in x.split(256)])
    return float(1.0 / z.std())


def build_vae_from(vae: AutoencoderKL) -> AutoencoderKL:
    """A fresh copy of ``vae`` (weights copied, optimiser state dropped)."""
    fresh = build_vae()
    fresh.load_state_dict(vae.state_dict())
    return fresh


def refine_decoder(
    folder: Path, steps: int, batch_size: int, lr: float, seed: int, shape_weight: float
) -> dict[str, float]:
    """Fine-tune the decoder of ``folder/vae`` with the encoder frozen; rewrite it in place.

    The latent space does not move, so a UNet trained on it stays valid; the
    decoder gets sharper shapes and truer colours.

    Returns
    -------
    dict
        Colour errors (see :func:`vae_colour_error`) after fine-tuning.
    """
    vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
    vae = train_vae(
        steps, batch_size, lr, seed, shape_weight=shape_weight, init=vae, decoder_only=True
    )
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    return vae_colour_error(vae)
