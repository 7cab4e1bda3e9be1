"""Train the embedded text-to-image model from scratch on the ShapesBench world.

One command reproduces the shipped weights (about 1 hour on 2 CPU cores)::

    python -m nulltta.shapes.train_model --out /tmp/shapes-sd

Phase 1 trains the ``AutoencoderKL`` (reconstruction + a tiny KL term) and
measures its colour error; phase 2 trains the UNet and the text encoder
jointly on the frozen VAE's latents (epsilon prediction, min-SNR-5 weighting,
10% empty prompts so the CFG null embedding is learned, EMA weights). A
complete pipeline folder is written every ``--save-every`` steps.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline

from .components import (
    build_scheduler,
    build_text_encoder,
    build_tokenizer,
    build_unet,
    build_vae,
)
from .world import BACKGROUND_RGB, BACKGROUNDS, COLOR_RGB, COLORS, sample_batch

__all__ = [
    "latent_scale",
    "main",
    "save_pipeline",
    "train_diffusion",
    "train_vae",
    "vae_colour_error",
]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _lr_at(step: int, steps: int, lr: float, warmup: int = 100) -> float:
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
            group["lr"] = _lr_at(step, steps, lr)
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
            _log(f"{what} step {step}/{steps} loss {rec.item():.5f} ({time.time() - start:.0f}s)")
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


def save_pipeline(out: Path, vae, unet, text_encoder, tokenizer, dtype: torch.dtype) -> None:
    """Write a diffusers folder that ``StableDiffusionPipeline.from_pretrained`` loads offline."""
    pipe = StableDiffusionPipeline(
        vae=copy.deepcopy(vae).to(dtype),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=copy.deepcopy(unet).to(dtype),
        scheduler=build_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    # The readable BPE files next to tokenizer.json (which is what gets loaded).
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(Path(tokenizer.name_or_path) / name, out / "tokenizer" / name)


def train_diffusion(
    vae: AutoencoderKL,
    tokenizer_dir: Path,
    out: Path,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    save_every: int,
    drop_prob: float = 0.1,
    snr_gamma: float = 5.0,
    ema_decay: float = 0.998,
    dtype: torch.dtype = torch.float16,
) -> dict[str, float]:
    """Train UNet + text encoder jointly on latents of the frozen VAE; save EMA weights.

    Returns
    -------
    dict
        ``final_loss`` (mean of the last 100 steps) and ``seconds``.
    """
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(tokenizer_dir)
    unet, text_encoder = build_unet(), build_text_encoder(tokenizer)
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text_encoder).eval()
    for p in [*ema_unet.parameters(), *ema_text.parameters(), *vae.parameters()]:
        p.requires_grad_(False)
    params = [*unet.parameters(), *text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = build_scheduler()
    abar = sched.alphas_cumprod.float()
    scale = vae.config.scaling_factor
    empty_ids = tokenizer(
        "", padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids[0]
    rng = np.random.default_rng(seed + 1)
    losses: list[float] = []
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, warmup=200)
        batch = sample_batch(batch_size, rng)
        with torch.no_grad():
            latents = vae.encode(batch.images * 2 - 1).latent_dist.sample() * scale
        ids = tokenizer(
            batch.prompts,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        drop = torch.rand(batch_size) < drop_prob
        ids[drop] = empty_ids
        t = torch.randint(0, sched.config.num_train_timesteps, (batch_size,))
        noise = torch.randn_like(latents)
        a = abar[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
        cond = text_encoder(ids)[0]
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        snr = abar[t] / (1 - abar[t])
        weight = snr.clamp(max=snr_gamma) / snr
        loss = (weight * (pred - noise).pow(2).mean((1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for model, ema in ((unet, ema_unet), (text_encoder, ema_text)):
                for p, q in zip(model.parameters(), ema.parameters(), strict=True):
                    q.lerp_(p, 1 - decay)
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            _log(
                f"unet step {step}/{steps} loss {np.mean(losses[-50:]):.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} ({time.time() - start:.0f}s)"
            )
        if (step + 1) % save_every == 0 or step == steps - 1:
            save_pipeline(out, vae, ema_unet, ema_text, tokenizer, dtype)
            _log(f"saved {out} at step {step + 1}")
    return {"final_loss": float(np.mean(losses[-100:])), "seconds": time.time() - start}


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
    dtype = next(iter(AutoencoderKL.from_pretrained(folder, subfolder="vae").parameters())).dtype
    vae = train_vae(
        steps, batch_size, lr, seed, shape_weight=shape_weight, init=vae, decoder_only=True
    )
    vae.to(dtype).save_pretrained(folder / "vae", safe_serialization=True)
    return vae_colour_error(vae.float())


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the pipeline")
    parser.add_argument("--vae-steps", type=int, default=600)
    parser.add_argument("--vae-batch-size", type=int, default=32)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--vae-refine-steps", type=int, default=250)
    parser.add_argument("--vae-refine-lr", type=float, default=5e-4)
    parser.add_argument("--vae-shape-weight", type=float, default=4.0)
    parser.add_argument("--decoder-steps", type=int, default=400)
    parser.add_argument("--decoder-lr", type=float, default=5e-4)
    parser.add_argument(
        "--refine-decoder-only",
        action="store_true",
        help="only fine-tune the decoder of the pipeline already in --out (stage 4)",
    )
    parser.add_argument("--steps", type=int, default=1700, help="UNet + text encoder steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 is steadier than 2 on a shared 2-core CPU)",
    )
    parser.add_argument(
        "--vae-from",
        type=Path,
        default=None,
        help="start from the VAE of a pipeline folder (skips VAE stage 1)",
    )
    parser.add_argument("--fp32", action="store_true", help="store UNet/VAE weights in fp32")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals slow small-model CPU training several-fold
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    start = time.time()
    if args.refine_decoder_only:
        errors = refine_decoder(
            args.out,
            args.decoder_steps,
            args.vae_batch_size,
            args.decoder_lr,
            args.seed + 20,
            args.vae_shape_weight,
        )
        _log(f"decoder refined in {time.time() - start:.0f}s: colour error {errors}")
        return
    if args.vae_from is not None:
        vae = AutoencoderKL.from_pretrained(args.vae_from, subfolder="vae", dtype=torch.float32)
    else:
        vae = train_vae(args.vae_steps, args.vae_batch_size, args.vae_lr, args.seed)
        # The fp16 round trip matches how the shipped model was made (its stage 1
        # VAE was restored from an fp16 checkpoint).
        vae = build_vae_from(vae.to(torch.float16).to(torch.float32))
    report["vae_colour_error_stage1"] = vae_colour_error(vae.eval())
    _log(f"vae stage 1 colour error {report['vae_colour_error_stage1']}")
    if args.vae_refine_steps > 0:
        # Stage 2: shape pixels weigh more, so small shapes keep their colour.
        vae = train_vae(
            args.vae_refine_steps,
            args.vae_batch_size,
            args.vae_refine_lr,
            args.seed + 10,
            shape_weight=args.vae_shape_weight,
            init=build_vae_from(vae),
        )
    vae.register_to_config(scaling_factor=latent_scale(vae))
    vae.eval()
    report["vae_seconds"] = time.time() - start
    report["vae_colour_error"] = vae_colour_error(vae)
    report["scaling_factor"] = vae.config.scaling_factor
    _log(f"vae colour error {report['vae_colour_error']} scale {vae.config.scaling_factor:.4f}")
    tok_dir = Path(tempfile.mkdtemp(prefix="shapes_tokenizer_"))
    result = train_diffusion(
        vae,
        tok_dir,
        args.out,
        args.steps,
        args.batch_size,
        args.lr,
        args.seed,
        args.save_every,
        dtype=torch.float32 if args.fp32 else torch.float16,
    )
    report.update(result)
    # Stage 4: sharper decoder on the fixed latent space (reads the saved fp16 VAE).
    report["vae_colour_error_final"] = refine_decoder(
        args.out,
        args.decoder_steps,
        args.vae_batch_size,
        args.decoder_lr,
        args.seed + 20,
        args.vae_shape_weight,
    )
    report["total_seconds"] = time.time() - start
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    _log(f"done: {json.dumps(report)}")


if __name__ == "__main__":
    main()
