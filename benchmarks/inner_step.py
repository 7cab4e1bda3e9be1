"""Time and peak memory of ONE Null-TTA inner step on the real SD1.5 architecture.

Compares, side by side in one run, the inner step with the conditional branch
cached (a batch-1 unconditional UNet pass in the graph: the core's
``NullTextModule.objective``) against the released code's way (a batch-2
``[uncond, cond]`` UNet pass in the graph), and the speed options
(``nulltta.speedups``) on top of the cached step. Weights are random (the
architecture, not the values, sets the cost) and frozen; the reward is the
built-in brightness; one step is objective + backward to phi'.

Every measurement runs in a fresh subprocess (so peak memory is that step's
own), variants are interleaved over rounds (so load on a shared machine hits
them alike), and the median over rounds is reported:

    python benchmarks/inner_step.py                      # CPU, 128x128 (16x16 latents)
    python benchmarks/inner_step.py --device cuda --resolution 512 --repeats 5

Peak memory: on CPU the process's peak RSS during the step minus its RSS
before it (weights and inputs already loaded); on CUDA max allocated minus
allocated before.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

#: float32 UNet and VAE (the "auto" default is reduced precision on CUDA).
FP32 = {"autocast_dtype": None, "vae_autocast_dtype": None}
BF16 = {"autocast_dtype": "bfloat16", "vae_autocast_dtype": "bfloat16"}
VARIANTS = {
    "release": (
        "conditional branch in the graph (batch-2 UNet pass, as released), fp32",
        FP32,
    ),
    "release+bf16": (
        "release under the same bf16 autocast (the baseline for the bf16 rows)",
        BF16,
    ),
    "release+auto": (
        "release at the CUDA default precision (fp16 UNet, fp32 VAE; the baseline for +auto)",
        {},
    ),
    "cached": ("conditional branch cached (batch-1 UNet pass; nulltta's way), fp32", FP32),
    "cached+ckpt": (
        "cached + gradient checkpointing (UNet, VAE)",
        {**FP32, "gradient_checkpointing": True},
    ),
    "cached+bf16": ("cached + bf16 autocast (UNet, VAE; fp32 reward)", BF16),
    "cached+auto": (
        "cached at the CUDA default precision (autocast 'auto': fp16 UNet, fp32 VAE)",
        {},
    ),
    "cached+auto+compile": (
        "cached+auto + torch.compile of UNet and VAE decoder (mode 'default'); "
        "first step = compile",
        {"compile_mode": "default"},
    ),
    "cached+auto+compile-ro": (
        "cached+auto + torch.compile mode 'reduce-overhead' (CUDA graphs); first step = compile",
        {"compile_mode": "reduce-overhead"},
    ),
    "cached+auto+tiny-decoder": (
        "cached+auto + the reward's gradient through a random AutoencoderTiny (TAESD's config)",
        {"gradient_decoder": "taesd"},
    ),
    "cached+half-decode": (
        "cached + reward through a half-resolution decode",
        {**FP32, "decode_scale": 0.5},
    ),
    "cached+quarter-decode": (
        "cached + reward through a quarter-resolution decode",
        {**FP32, "decode_scale": 0.25},
    ),
    "cached+ckpt+half-decode": (
        "cached + checkpointing + half-resolution decode",
        {**FP32, "gradient_checkpointing": True, "decode_scale": 0.5},
    ),
}
#: The baseline each row's ratio is taken against (same precision).
BASELINE = {"bf16": "release+bf16", "auto": "release+auto"}


def baseline_of(name: str) -> str:
    """The release variant at ``name``'s precision."""
    for tag, base in BASELINE.items():
        if f"+{tag}" in name:
            return base
    return "release"


def taesd_decoder(vae, device):
    """A diffusers ``AutoencoderTiny`` of TAESD's config for ``vae`` (random weights).

    TAESD's 64-channel blocks, (3, 3, 3, 1) decoder blocks for SD's factor 8;
    one stage fewer per halving of the factor (the tiny test VAE).
    """
    import torch
    from diffusers import AutoencoderTiny

    stages = len(vae.config.block_out_channels)
    torch.manual_seed(0)
    return (
        AutoencoderTiny(
            latent_channels=vae.config.latent_channels,
            encoder_block_out_channels=(64,) * stages,
            decoder_block_out_channels=(64,) * stages,
            num_encoder_blocks=(1,) + (3,) * (stages - 1),
            num_decoder_blocks=(3,) * (stages - 1) + (1,),
        )
        .to(device)
        .eval()
    )


def build_sd15(folder: Path) -> None:
    """Write an SD1.5-architecture pipeline with random weights to ``folder``."""
    from nulltta.testing import sd15_random_pipeline

    sd15_random_pipeline(seed=0).save_pretrained(folder)


def release_objective(module, null_packed, latents, eps_ref, coefficients):
    """The released way: ``[phi', c]`` through the UNet as one batch-2 pass with grad."""
    import torch

    from nulltta.adapters import cat_embeddings
    from nulltta.equations import cfg_combine, embedding_kl, paper_local_kl, tweedie_x0

    # The UNet and the VAE run at the adapter's precision (``set_precision`` from the config).
    traj, config = module.trajectory, module.config
    embeddings = cat_embeddings([module.null_embeddings(null_packed), traj.cond])
    both = module.adapter.predict_noise(
        torch.cat([latents, latents]), coefficients.timestep, embeddings
    )
    eps_uncond, eps_cond = both.chunk(2)
    eps = cfg_combine(eps_uncond, eps_cond, config.guidance_scale)
    x0 = tweedie_x0(latents, eps, coefficients.signal, coefficients.noise)
    images = module.adapter.decode(x0)
    eps_uncond = eps_uncond.float()
    reward = module.reward(images.float(), traj.prompts)
    kl = paper_local_kl(eps_uncond, eps_ref, config.guidance_scale, coefficients)
    kl = kl + embedding_kl(null_packed, traj.null_packed, config.sigma_phi_sq)
    return module.reward_weight * reward - config.kl_weight * kl


def worker(args: argparse.Namespace) -> dict:
    """Measure one variant: memory on a fresh step, time on the next one."""
    import torch
    from diffusers import StableDiffusionPipeline

    from nulltta.adapters import make_adapter
    from nulltta.bench.cost import measure
    from nulltta.config import AlignmentConfig
    from nulltta.module import NullTextModule
    from nulltta.rewards import Brightness
    from nulltta.speedups import gradient_checkpointing

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    pipe = StableDiffusionPipeline.from_pretrained(args.cache, safety_checker=None).to(device)
    options = dict(VARIANTS[args.worker][1])
    decoder = options.pop("gradient_decoder", None)
    decoder = taesd_decoder(pipe.vae, device) if decoder == "taesd" else None
    config = AlignmentConfig(num_inference_steps=100, **options).validate()
    module = NullTextModule(make_adapter(pipe), Brightness().to(device), config, decoder)
    generator = torch.Generator(device).manual_seed(0)
    traj = module.start_trajectory("a red circle", args.resolution, args.resolution, generator)
    adapter, step = module.adapter, 30
    coefficients = traj.coefficients[step]
    latents = traj.latents
    with torch.no_grad():
        eps_cond = adapter.predict_noise(latents, coefficients.timestep, traj.cond)
        eps_ref = adapter.predict_noise(latents, coefficients.timestep, traj.null)
    phi = module.null_embedding

    def inner_step() -> None:
        phi.grad = None
        if args.worker.startswith("release"):
            values = release_objective(module, phi, latents, eps_ref, coefficients)
        else:
            values, _ = module.objective(phi, latents, eps_cond, eps_ref, coefficients)
        (-values.sum()).backward()

    with (
        adapter.frozen(),
        gradient_checkpointing(adapter.frozen_modules(), config.gradient_checkpointing),
    ):
        with measure(device) as first:
            inner_step()
        timings = []
        for _ in range(args.repeats):
            with measure(device) as timed:
                inner_step()
            timings.append(timed.seconds)
    return {
        "variant": args.worker,
        "seconds": statistics.median(timings),
        "first_seconds": first.seconds,
        "peak_mb": first.peak_memory_delta_mb,
        "memory_kind": first.memory_kind,
        "grad_norm": float(phi.grad.norm()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=128, help="image side (128 on CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed steps per process, median (5 on a GPU)"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/nulltta-sd15-random"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return
    if not (args.cache / "model_index.json").exists():
        print(f"building the SD1.5 architecture with random weights in {args.cache} ...")
        build_sd15(args.cache)
    results: dict[str, list[dict]] = {name: [] for name in args.variants}
    started = time.time()
    for round_index in range(args.rounds):
        for name in args.variants:
            command = [sys.executable, __file__, "--worker", name, "--device", args.device]
            command += ["--resolution", str(args.resolution), "--threads", str(args.threads)]
            command += ["--cache", str(args.cache), "--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                # One broken variant must not cost the others' measurements.
                print(f"  round {round_index + 1} {name} FAILED:\n{done.stderr[-2000:]}")
                continue
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  round {round_index + 1} {name}: {results[name][-1]}", flush=True)
    results = {name: runs for name, runs in results.items() if runs}
    summary = {
        name: {
            "seconds": statistics.median(r["seconds"] for r in runs),
            "first_seconds": statistics.median(r["first_seconds"] for r in runs),
            "peak_mb": statistics.median(r["peak_mb"] for r in runs),
        }
        for name, runs in results.items()
    }
    base = summary.get("release")
    kind = next(iter(results.values()))[0]["memory_kind"]
    print(
        f"\nOne inner step, SD1.5 UNet + VAE architecture (random weights), "
        f"{args.resolution}x{args.resolution} images ({args.resolution // 8}x"
        f"{args.resolution // 8} latents), {args.device}, {args.threads} thread(s), "
        f"median of {args.rounds} fresh processes; memory = {kind} above the level before "
        f"the step ({time.time() - started:.0f} s in all)\n"
    )
    print("| variant | time (s) | x release* | first step (s) | peak memory (MB) | x release* |")
    print("|---|---|---|---|---|---|")
    for name, stats in summary.items():
        # Rows are compared with the release at the same precision.
        reference = summary.get(baseline_of(name))
        time_ratio = stats["seconds"] / reference["seconds"] if reference else float("nan")
        memory_ratio = stats["peak_mb"] / reference["peak_mb"] if reference else float("nan")
        print(
            f"| {name}: {VARIANTS[name][0]} | {stats['seconds']:.3f} | {time_ratio:.2f} | "
            f"{stats['first_seconds']:.2f} | {stats['peak_mb']:.0f} | {memory_ratio:.2f} |"
        )
    print(
        "\n*: `+bf16` rows against `release+bf16`, `+auto` rows against `release+auto`, the "
        "others against `release` (fp32). First step: the warm-up step, which holds the "
        "compile time of the `+compile` rows."
    )
    if base and "cached" in summary:
        row_seconds = base["seconds"] - summary["cached"]["seconds"]
        row_mb = base["peak_mb"] - summary["cached"]["peak_mb"]
        print(
            f"\nOne UNet row in the graph (release - cached): {row_seconds:.2f} s, "
            f"{row_mb:.0f} MB; the rest of the cached step (VAE decode, reward and their "
            "backward): "
            f"{summary['cached']['seconds'] - row_seconds:.2f} s."
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) for k, v in vars(args).items()}
        record = {"args": settings, "runs": results, "summary": summary}
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
