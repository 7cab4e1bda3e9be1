"""What a cheaper embedded model would buy: Null-TTA's inner step per UNet/VAE layout.

    python benchmarks/embedded_architecture.py --json benchmarks/results/embedded_architecture.json

The README's main job runs the method's default schedule (100 steps, 1,520
inner steps, K = 3) on the embedded model; every inner step is a UNet and a
VAE-decoder forward and backward pass at batch 1, so the model's layout sets
its time. This script swaps the shipped UNet and/or VAE for freshly built
ones (the real diffusers classes, random weights: the cost of a pass does not
depend on the weights' values) and times ``NullTextAligner.fit`` on a
shortened schedule (``--steps`` timesteps of ``--inner`` inner steps each),
interleaving the layouts over ``--repeats`` rounds so that machine noise hits
them alike. It prints the median milliseconds per inner step, the ratio to the
shipped layout and the implied fit time of the default schedule.
``--candidate DIR`` also times a trained pipeline folder (a retrained model
of the same layout, e.g. one that predicts v), under the name ``candidate``.

Speed alone does not make a layout usable: the model must still follow its
prompt. ``benchmarks/results/shapes_training/`` holds the two cheaper layouts
trained so far: ``midblock_only/`` (plain fidelity 50.5%: the shapes are lost)
and ``attention_4x4/`` (92.5%, against the shipped model's 96.0%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel

from nulltta import NullTextAligner
from nulltta.config import AlignmentConfig
from nulltta.equations import inner_steps_schedule
from nulltta.shapes.components import UNET_CONFIG, VAE_CONFIG
from nulltta.shapes.model import load_embedded_pipeline, load_world_model
from nulltta.shapes.profile import ALIGNMENT_DEFAULTS

_DEFAULT = AlignmentConfig()
#: Inner steps of the method's default schedule (n_min 5 to n_max 25 over 100 steps).
DEFAULT_SCHEDULE_INNER_STEPS = sum(
    inner_steps_schedule(
        _DEFAULT.num_inference_steps, _DEFAULT.n_min, _DEFAULT.n_max, _DEFAULT.schedule_rate
    )
)

_PLAIN_BLOCKS = {"down_block_types": ["DownBlock2D"] * 2, "up_block_types": ["UpBlock2D"] * 2}

#: name -> (UNet config changes or None for the shipped UNet, VAE changes or None, what it is)
LAYOUTS: dict[str, tuple[dict | None, dict | None, str]] = {
    "shipped": (None, None, "the shipped model: cross-attention at 8x8 and 4x4"),
    "light-vae": (
        None,
        {"block_out_channels": [32, 32, 64]},
        "VAE blocks (32, 32, 64) instead of (32, 64, 64)",
    ),
    "attention-4x4": (
        {"down_block_types": ["DownBlock2D"] * 2,
         "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"]},
        {"block_out_channels": [32, 32, 64]},
        "cross-attention only at 4x4 (mid block and first up block), light VAE",
    ),
    "mid-block-only": (
        _PLAIN_BLOCKS,
        {"block_out_channels": [32, 32, 64]},
        "cross-attention only in the 4x4 mid block, light VAE",
    ),
}  # fmt: skip


def build_layout(base: StableDiffusionPipeline, name: str) -> StableDiffusionPipeline:
    """The embedded pipeline with the UNet and/or VAE of layout ``name`` (random weights)."""
    unet_changes, vae_changes, _ = LAYOUTS[name]
    components = dict(base.components)
    torch.manual_seed(0)
    if unet_changes is not None:
        components["unet"] = UNet2DConditionModel(**{**UNET_CONFIG, **unet_changes})
    if vae_changes is not None:
        vae = AutoencoderKL(**{**VAE_CONFIG, **vae_changes})
        vae.register_to_config(scaling_factor=base.vae.config.scaling_factor)
        components["vae"] = vae
    pipe = StableDiffusionPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def time_inner_step(pipe: StableDiffusionPipeline, steps: int, inner: int) -> float:
    """Milliseconds per inner step of one ``fit`` (per-timestep work spread over them)."""
    aligner = NullTextAligner(
        pipe,
        reward="shapes-preference",
        num_inference_steps=steps,
        n_min=inner,
        n_max=inner,
        seed=0,
        progress=False,
        **ALIGNMENT_DEFAULTS,
    )
    start = time.perf_counter()
    aligner.fit("a red circle on a white background")
    return (time.perf_counter() - start) / (steps * inner) * 1e3


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    parser.add_argument("--steps", type=int, default=20, help="timesteps per timed fit")
    parser.add_argument("--inner", type=int, default=15, help="inner steps per timestep")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--candidate", type=Path, default=None, help="also time this trained pipeline folder"
    )
    args = parser.parse_args(argv)
    if "shipped" not in args.layouts:
        parser.error("--layouts must include 'shipped': ratios are to the shipped layout")

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    base = load_embedded_pipeline()
    pipes = {name: build_layout(base, name) for name in args.layouts}
    descriptions = {name: LAYOUTS[name][2] for name in args.layouts}
    if args.candidate is not None:
        pipes["candidate"] = load_world_model(args.candidate)
        descriptions["candidate"] = f"trained pipeline folder {args.candidate}"
    params = {
        name: sum(p.numel() for p in (*pipe.unet.parameters(), *pipe.vae.parameters())) / 1e6
        for name, pipe in pipes.items()
    }
    timings: dict[str, list[float]] = {name: [] for name in pipes}
    for _ in range(args.repeats):
        for name, pipe in pipes.items():
            timings[name].append(time_inner_step(pipe, args.steps, args.inner))

    shipped = statistics.median(timings["shipped"])
    rows = []
    header = ("layout", "UNet+VAE (M)", "ms/inner", "x shipped", "fit (s)")
    print(f"{header[0]:16s} {header[1]:>12s} {header[2]:>9s} {header[3]:>9s} {header[4]:>8s}")
    for name, values in timings.items():
        ms = statistics.median(values)
        row = {
            "layout": name,
            "description": descriptions[name],
            "unet_vae_params_m": round(params[name], 2),
            "ms_per_inner_step": round(ms, 1),
            "ratio_to_shipped": round(ms / shipped, 2),
            "default_schedule_fit_s": round(ms * DEFAULT_SCHEDULE_INNER_STEPS / 1e3),
            "all_ms": [round(v, 1) for v in values],
        }
        rows.append(row)
        print(
            f"{name:16s} {row['unet_vae_params_m']:12.2f} {ms:9.1f} "
            f"{row['ratio_to_shipped']:9.2f} {row['default_schedule_fit_s']:8d}"
        )
    if args.json is not None:
        settings = {k: getattr(args, k) for k in ("steps", "inner", "repeats", "threads")}
        settings["candidate"] = None if args.candidate is None else str(args.candidate)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
