"""The light gradient decoder of ``benchmarks/gradient_decoder.py``: its shape and training.

A diffusers ``AutoencoderTiny`` (TAESD-style) whose decoder maps the
embedded model's latents (``4 x 8 x 8``) to its images (``3 x 32 x 32``),
trained, seeded, to match the full VAE's decodes of (a) the encoded latents
of world images and (b) the Tweedie estimates ``x0_hat`` of plain CFG
trajectories, in value and in a directional derivative (the reward's
gradient goes through the decoder's Jacobian).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "build_decoder", "decode_full", "decode_light", "train", "trajectory_latents", "world_latents",
]  # fmt: skip


# --- the decoder -------------------------------------------------------------------
def build_decoder(vae: nn.Module, channels: int = 32, blocks: tuple[int, ...] = (2, 2, 1)) -> Any:
    """An ``AutoencoderTiny`` whose decoder maps ``vae``'s latents to its image size.

    One upsampling stage per halving of the VAE's factor (``len(blocks) - 1``
    of them). Only the decoder is trained and used; the encoder, which
    ``AutoencoderTiny`` requires, is the smallest one that fits.
    """
    from diffusers import AutoencoderTiny

    stages = len(vae.config.block_out_channels)
    if len(blocks) != stages:
        raise ValueError(f"blocks={blocks} needs {stages} entries for this VAE's {stages} stages")
    return AutoencoderTiny(
        latent_channels=vae.config.latent_channels,
        encoder_block_out_channels=(8,) * stages,
        num_encoder_blocks=(1,) * stages,
        decoder_block_out_channels=(channels,) * stages,
        num_decoder_blocks=tuple(blocks),
        scaling_factor=1.0,
    )


def decode_light(decoder: Any, latents: Tensor) -> Tensor:
    """The light decoder's image in [-1, 1] for model-space latents (as the adapter calls it)."""
    return decoder.decode(latents / decoder.config.scaling_factor, return_dict=False)[0]


def decode_full(vae: nn.Module, latents: Tensor) -> Tensor:
    """The full VAE's image in [-1, 1] for model-space latents."""
    return vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]


# --- training data -----------------------------------------------------------------
@torch.no_grad()
def world_latents(pipe: Any, n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Encoded world images: ``(latents, full-VAE decodes, clean images)``, images in [-1, 1]."""
    from nulltta.shapes.world import sample_batch

    images = sample_batch(n, seed).images * 2 - 1
    generator = torch.Generator().manual_seed(seed)
    latents, targets = [], []
    for chunk in images.split(256):
        dist = pipe.vae.encode(chunk).latent_dist
        z = dist.mean + dist.std * torch.randn(dist.mean.shape, generator=generator)
        z = z * pipe.vae.config.scaling_factor
        latents.append(z)
        targets.append(decode_full(pipe.vae, z))
    return torch.cat(latents), torch.cat(targets), images


@torch.no_grad()
def trajectory_latents(
    pipe: Any, n: int, steps: int, seed: int, guidance_scale: float
) -> tuple[Tensor, Tensor, list[str]]:
    """Tweedie estimates ``x0_hat`` of ``n`` plain CFG trajectories (DDIM, eta 1), every step.

    Returns ``(latents, full-VAE decodes, prompts)`` with ``n * steps`` rows.
    """
    from nulltta.adapters import cat_embeddings, make_adapter
    from nulltta.equations import cfg_combine, transition_mean, tweedie_x0
    from nulltta.shapes.world import sample_batch

    adapter = make_adapter(pipe)
    prompts = sample_batch(n, seed).prompts
    encoded = [adapter.encode_prompt(p) for p in prompts]
    cond = cat_embeddings([c for c, _ in encoded])
    null = cat_embeddings([u for _, u in encoded])
    height, width = adapter.default_resolution()
    generator = torch.Generator().manual_seed(seed)
    latents = adapter.prepare_latents(n, height, width, generator)
    timesteps = adapter.set_timesteps(steps)
    both = cat_embeddings([null, cond])
    collected = []
    for timestep in timesteps:
        coefficients = adapter.step_coefficients(timestep)
        eps_uncond, eps_cond = adapter.predict_noise(
            torch.cat([latents, latents]), timestep, both
        ).chunk(2)
        eps = cfg_combine(eps_uncond, eps_cond, guidance_scale)
        collected.append(tweedie_x0(latents, eps, coefficients.signal, coefficients.noise))
        mean = transition_mean(latents, eps, coefficients)
        latents = mean + coefficients.std * torch.randn(mean.shape, generator=generator)
    x0 = torch.cat(collected)
    targets = torch.cat([decode_full(pipe.vae, chunk) for chunk in x0.split(256)])
    return x0, targets, prompts * len(timesteps)


def train(
    pipe: Any, args: argparse.Namespace
) -> tuple[Any, dict[str, Any], dict[str, Tensor | list[str]]]:
    """Train the light decoder; return it, the training record and the held-out data."""
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    guidance = args.guidance_scale
    world_z, world_y, _ = world_latents(pipe, args.world_images, args.seed)
    traj_z, traj_y, _ = trajectory_latents(
        pipe, args.trajectories, args.denoise_steps, args.seed, guidance
    )
    latents, targets = torch.cat([world_z, traj_z]), torch.cat([world_y, traj_y])
    # Each latent also moved by a small random step, with the full VAE's decode there: the
    # difference of the two decodes is a directional derivative of the full VAE, which the
    # light decoder learns to match (the reward's gradient goes through the Jacobian).
    noise = torch.Generator().manual_seed(args.seed + 2)
    steps = args.jvp_scale * torch.randn(latents.shape, generator=noise)
    with torch.no_grad():
        moved = torch.cat([decode_full(pipe.vae, c) for c in (latents + steps).split(256)])
    data_seconds = time.perf_counter() - started
    held_world = world_latents(pipe, args.held_out, args.seed + 1)
    held_traj = trajectory_latents(
        pipe, max(1, args.held_out // args.denoise_steps), args.denoise_steps, args.seed + 1,
        guidance,
    )  # fmt: skip
    decoder = build_decoder(pipe.vae, args.channels, tuple(args.blocks))
    decoder.train()
    parameters = list(decoder.decoder.parameters())
    optimizer = torch.optim.Adam(parameters, lr=args.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, args.steps))
    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    train_started = time.perf_counter()
    for step in range(args.steps):
        index = torch.randint(0, latents.shape[0], (args.batch_size,), generator=generator)
        z = latents[index]
        if args.jvp_weight > 0:
            both = decode_light(decoder, torch.cat([z, z + steps[index]]))
            here, there = both.chunk(2)
            value = F.mse_loss(here, targets[index])
            change = F.mse_loss(there - here, moved[index] - targets[index])
            loss = value + args.jvp_weight * change / args.jvp_scale**2
        else:
            loss = F.mse_loss(decode_light(decoder, z), targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % max(1, args.steps // 10) == 0 or step == args.steps - 1:
            print(f"  step {step + 1}/{args.steps}: loss {losses[-1]:.5f}", flush=True)
    train_seconds = time.perf_counter() - train_started
    decoder.eval()
    record = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "jvp_weight": args.jvp_weight,
        "jvp_scale": args.jvp_scale,
        "seed": args.seed,
        "pool": {"world_images": int(world_z.shape[0]), "trajectory_x0": int(traj_z.shape[0])},
        "decoder_parameters": sum(p.numel() for p in parameters),
        "data_seconds": data_seconds,
        "train_seconds": train_seconds,
        "final_train_loss": statistics.mean(losses[-20:]),
    }
    held = {
        "world": held_world,
        "trajectory": held_traj,
    }
    return decoder, record, held
