"""Train the embedded text-to-image model from scratch on the ShapesBench world.

The shipped model (version 2.1) in one command, from scratch (2 torch
threads by default)::

    python -m nulltta.shapes.train_model --out /tmp/shapes-sd --prediction-type v_prediction

Without ``--prediction-type`` the UNet predicts epsilon, as version 2.0 did.
Stage 1 trains the ``AutoencoderKL`` (reconstruction + a tiny KL term), stage
2 refines it with the shape's pixels weighted more; stage 3 trains the UNet
and the text encoder jointly on the frozen VAE's latents, on the training
captions of :mod:`nulltta.shapes.captions` (size and position words, 10%
empty captions so the CFG null embedding is learned; the loss weight of
:func:`loss_weight`, EMA weights); stage 4 refines the decoder alone. A
complete pipeline folder (fp32 safetensors) is written every ``--save-every``
steps. The model card (``nulltta/assets/shapes-sd/README.md``) has the
measured wall time and metrics of the shipped run.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline

from .captions import EMPTY_PROB, sample_captioned_batch
from .components import (
    build_scheduler,
    build_text_encoder,
    build_tokenizer,
    build_unet,
)
from .train_vae import (
    build_vae_from,
    latent_scale,
    log,
    refine_decoder,
    train_vae,
    vae_colour_error,
    warmup_cosine_lr,
)

__all__ = [
    "PREDICTION_TYPES",
    "diffusion_target",
    "loss_weight",
    "main",
    "save_pipeline",
    "train_diffusion",
]

PREDICTION_TYPES = ("epsilon", "v_prediction")


def diffusion_target(
    latents: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """What the UNet learns to predict from ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``.

    ``"epsilon"``: ``eps``; ``"v_prediction"``: ``v = sqrt(abar) eps - sqrt(1 - abar) x0``.
    ``alpha_bar`` broadcasts against ``latents``.
    """
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * latents
    raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {PREDICTION_TYPES}")


def loss_weight(snr: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Per-sample weight of the squared error in the prediction's own units.

    In ``x0`` units the epsilon error counts ``SNR`` times and the v error
    ``SNR + 1`` times, so:

    - ``"epsilon"``: ``min(SNR, gamma) / SNR`` (min-SNR-gamma): the ``x0``
      weight is ``min(SNR, gamma)``, which vanishes at high noise;
    - ``"v_prediction"``: ``min(SNR + 1, gamma) / (SNR + 1)``: the ``x0``
      weight is ``min(SNR + 1, gamma)``, at least 1 at high noise, where
      only the caption can say where the shape goes.
    """
    if prediction_type == "epsilon":
        return snr.clamp(max=gamma) / snr
    if prediction_type == "v_prediction":
        return (snr + 1).clamp(max=gamma) / (snr + 1)
    raise ValueError(f"unknown prediction_type {prediction_type!r}; use one of {PREDICTION_TYPES}")


def save_pipeline(
    out: Path, vae, unet, text_encoder, tokenizer, prediction_type: str = "epsilon"
) -> None:
    """Write a diffusers folder (fp32 weights) that ``from_pretrained`` loads offline."""
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=build_scheduler(prediction_type),
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
    drop_prob: float = EMPTY_PROB,
    snr_gamma: float = 5.0,
    ema_decay: float = 0.998,
    prediction_type: str = "epsilon",
) -> dict[str, float]:
    """Train UNet + text encoder jointly on latents of the frozen VAE; save EMA weights.

    Each step draws fresh training captions and matching images
    (:func:`nulltta.shapes.captions.sample_captioned_batch`); a caption is
    replaced by ``""`` with probability ``drop_prob``. ``prediction_type``
    and its loss weight: :func:`diffusion_target`, :func:`loss_weight`.

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
            group["lr"] = warmup_cosine_lr(step, steps, lr, warmup=200)
        batch = sample_captioned_batch(batch_size, rng)
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
        target = diffusion_target(latents, noise, a, prediction_type)
        weight = loss_weight(abar[t] / (1 - abar[t]), snr_gamma, prediction_type)
        loss = (weight * (pred - target).pow(2).mean((1, 2, 3))).mean()
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
            log(
                f"unet step {step}/{steps} loss {np.mean(losses[-50:]):.4f} "
                f"lr {opt.param_groups[0]['lr']:.2e} ({time.time() - start:.0f}s)"
            )
        if (step + 1) % save_every == 0 or step == steps - 1:
            save_pipeline(out, vae, ema_unet, ema_text, tokenizer, prediction_type)
            log(f"saved {out} at step {step + 1}")
    return {"final_loss": float(np.mean(losses[-100:])), "seconds": time.time() - start}


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
    parser.add_argument("--steps", type=int, default=4000, help="UNet + text encoder steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--prediction-type",
        choices=PREDICTION_TYPES,
        default="epsilon",
        help="what the UNet predicts, with its loss weight (see loss_weight)",
    )
    parser.add_argument("--save-every", type=int, default=100)
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads (default 2, the setting the shipped model was trained with)",
    )
    parser.add_argument(
        "--vae-from",
        type=Path,
        default=None,
        help="start from the VAE of a pipeline folder (skips VAE stage 1)",
    )
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # denormals slow small-model CPU training several-fold
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "cpu": _cpu_description(),
        "load_average_at_start": os.getloadavg(),
    }
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
        log(f"decoder refined in {time.time() - start:.0f}s: colour error {errors}")
        return
    if args.vae_from is not None:
        vae = AutoencoderKL.from_pretrained(args.vae_from, subfolder="vae", dtype=torch.float32)
    else:
        vae = train_vae(args.vae_steps, args.vae_batch_size, args.vae_lr, args.seed)
    report["vae_colour_error_stage1"] = vae_colour_error(vae.eval())
    log(f"vae stage 1 colour error {report['vae_colour_error_stage1']}")
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
    log(f"vae colour error {report['vae_colour_error']} scale {vae.config.scaling_factor:.4f}")
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
        prediction_type=args.prediction_type,
    )
    report["unet_final_loss"] = result["final_loss"]
    report["unet_seconds"] = result["seconds"]
    decoder_start = time.time()
    # Stage 4: sharper decoder on the fixed latent space (reads the saved VAE).
    report["vae_colour_error_final"] = refine_decoder(
        args.out,
        args.decoder_steps,
        args.vae_batch_size,
        args.decoder_lr,
        args.seed + 20,
        args.vae_shape_weight,
    )
    report["decoder_seconds"] = time.time() - decoder_start
    report["total_seconds"] = time.time() - start
    report["load_average_at_end"] = os.getloadavg()
    (args.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"done: {json.dumps(report)}")


def _cpu_description() -> str:
    """The CPU's model name and the vector instructions torch uses on it.

    Weights are bit-reproducible only on the same kind of CPU and thread
    count (the model card), so the report says which CPU wrote them.
    """
    name = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


if __name__ == "__main__":
    main()
