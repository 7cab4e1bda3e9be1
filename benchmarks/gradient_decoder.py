"""A light gradient decoder for the embedded model, and what it does to the result.

``NullTextAligner(gradient_decoder=...)`` takes the reward's gradient in the
inner loop through a diffusers ``AutoencoderTiny`` (TAESD-style) instead of
the full VAE; candidate scoring and the final images keep the full VAE. This
script

1. **trains** such a decoder for the embedded model's latents (``4 x 8 x 8 ->
   3 x 32 x 32``), seeded: the targets are the full VAE's decodes of (a) the
   encoded latents of world images (``nulltta.shapes.world.sample_batch``) and
   (b) the Tweedie estimates ``x0_hat`` of plain CFG sampling trajectories,
   which is what the inner loop decodes. It reports the reconstruction error
   on held-out latents of both kinds and the cosine between the target
   reward's gradient with respect to ``x0_hat`` through either decoder, and
   saves the decoder (safetensors + config) under
   ``benchmarks/results/gradient_decoder/decoder/``;
2. **measures**, interleaved in one process on the same ShapesBench pairs,
   ``NullTextAligner`` with and without the decoder: seconds per image, one
   inner step (objective + backward, median of repeats, interleaved), and the
   target, held-out, gold and fidelity scores of the final (8-bit) images,
   with paired differences and standard errors.

Everything is read at run time (``--model``: the embedded model by default),
so a retrained model only needs a rerun:

    nice -n 19 python benchmarks/gradient_decoder.py                  # train, then measure
    python benchmarks/gradient_decoder.py --skip-train                # measure the saved decoder
    python benchmarks/gradient_decoder.py --steps 5 --prompts 1 --seeds 0 --denoise-steps 2 \\
        --out /tmp/gd                                                 # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from gradient_decoder_report import markdown
from light_decoder import decode_full, decode_light, train, trajectory_latents, world_latents
from torch import Tensor

RESULTS = Path(__file__).parent / "results" / "gradient_decoder"


@torch.no_grad()
def _psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of images in [-1, 1], compared in [0, 1] after clamping."""
    a, b = (a / 2 + 0.5).clamp(0, 1), (b / 2 + 0.5).clamp(0, 1)
    return float(10 * torch.log10(1 / F.mse_loss(a, b)))


def reconstruction(decoder: Any, pipe: Any, held: dict[str, Any]) -> dict[str, Any]:
    """Held-out error of the light decoder against the full VAE (and the clean images)."""
    out: dict[str, Any] = {}
    with torch.no_grad():
        z, full, clean = held["world"]
        light = decode_light(decoder, z)
        out["world"] = {
            "n": int(z.shape[0]),
            "mse_vs_full_vae": float(F.mse_loss(light, full)),
            "psnr_vs_full_vae_db": _psnr(light, full),
            "psnr_light_vs_clean_db": _psnr(light, clean),
            "psnr_full_vae_vs_clean_db": _psnr(full, clean),
        }
        z, full, _ = held["trajectory"]
        light = decode_light(decoder, z)
        out["trajectory"] = {
            "n": int(z.shape[0]),
            "mse_vs_full_vae": float(F.mse_loss(light, full)),
            "psnr_vs_full_vae_db": _psnr(light, full),
        }
    return out


def gradient_agreement(decoder: Any, pipe: Any, held: dict[str, Any], reward: Any) -> dict:
    """Cosine between the reward's gradient w.r.t. ``x0_hat`` through either decoder."""
    z, _, prompts = held["trajectory"]

    def gradient(decode) -> Tensor:
        x = z.clone().requires_grad_(True)
        images = (decode(x).float() / 2 + 0.5).clamp(0, 1)
        reward.score_trusted(images, list(prompts)).sum().backward()
        return x.grad.flatten(1)

    for module in (pipe.vae, decoder):
        module.requires_grad_(False)
    full = gradient(lambda x: decode_full(pipe.vae, x))
    light = gradient(lambda x: decode_light(decoder, x))
    cosine = F.cosine_similarity(full, light, dim=1).tolist()
    return {"n": len(cosine), "cosine": _mean_se(cosine)}


# --- the measurement ---------------------------------------------------------------
def _mean_se(values: list[float]) -> dict[str, float]:
    mean = statistics.mean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": mean, "se": se}


def available_scorers(profile: Any, device: torch.device) -> tuple[dict[str, Any], dict[str, str]]:
    """The profile's evaluation scorers (as ``evaluation_scorers``), skipping any that fail to load.

    Returns the scorers and ``{name: error}`` for those left out, so a reward whose
    weights are being replaced does not cost the other measurements.
    """
    from nulltta.rewards import get_reward

    names = {"target": profile.reward}
    for name in (*profile.heldout, *([profile.gold] if profile.gold else [])):
        names[name] = name
    scorers: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for label, name in names.items():
        try:
            reward = get_reward(name).to(device).eval()
        except Exception as error:  # noqa: BLE001 - reported in the results
            unavailable[label] = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            continue
        scorers[label] = lambda images, prompts, reward=reward: reward.score_trusted(
            images, prompts
        )
    if profile.fidelity is not None:
        scorers["fidelity"] = profile.fidelity
    return scorers, unavailable


def time_inner_step(aligner: Any, prompt: str, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeats`` inner steps (objective + backward).

    On the aligner's last module, after one warm-up step.
    """
    module = aligner.module_
    adapter = module.adapter
    height, width = adapter.default_resolution()
    generator = torch.Generator(adapter.device).manual_seed(0)
    traj = module.start_trajectory(prompt, height, width, generator)
    step = len(traj.timesteps) // 2
    coefficients = traj.coefficients[step]
    latents = traj.latents
    with torch.no_grad():
        eps_cond = adapter.predict_noise(latents, coefficients.timestep, traj.cond)
        eps_ref = adapter.predict_noise(latents, coefficients.timestep, traj.null)
    phi = module.null_embedding
    wall, cpu = [], []
    with adapter.frozen():
        for _ in range(repeats + 1):
            phi.grad = None
            started, cpu_started = time.perf_counter(), time.process_time()
            values, _ = module.objective(phi, latents, eps_cond, eps_ref, coefficients)
            (-values.sum()).backward()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)
    return wall[1:], cpu[1:]  # the first is a warm-up


def measure(pipe: Any, decoder: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Both aligners on the same pairs, interleaved; scores, times and paired differences."""
    from nulltta import NullTextAligner
    from nulltta.adapters import make_adapter
    from nulltta.bench.base import compressed_rate
    from nulltta.bench.cost import measure as cost_of
    from nulltta.bench.scoring import score_images
    from nulltta.bench.shapesbench import shapesbench_prompts
    from nulltta.equations import inner_steps_schedule
    from nulltta.images import to_tensor
    from nulltta.profiles import model_profile

    device = torch.device(args.device)
    profile = model_profile(args.model, make_adapter(pipe), loaded=pipe)
    scorers, unavailable = available_scorers(profile, device)
    rate = compressed_rate(args.denoise_steps)
    common = {"num_inference_steps": args.denoise_steps, "schedule_rate": rate}
    variants = {
        "full VAE": NullTextAligner(pipe, **common),
        "light decoder": NullTextAligner(pipe, gradient_decoder=decoder, **common),
    }
    pairs = [(p, s) for p in shapesbench_prompts(args.prompts) for s in args.seeds]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for number, (prompt, seed) in enumerate(pairs):
        order = list(variants) if number % 2 == 0 else list(variants)[::-1]
        for name in order:
            aligner = variants[name].set_params(seed=seed)
            cpu_started = time.process_time()
            with cost_of(device) as cost:
                aligner.fit(prompt)
            cpu_seconds = time.process_time() - cpu_started
            scores = score_images(to_tensor(aligner.image_).to(device), [prompt], scorers)[0]
            rows.append(
                {"variant": name, "prompt": prompt, "seed": seed, "seconds": cost.seconds,
                 "cpu_seconds": cpu_seconds, "scores": scores}
            )  # fmt: skip
        print(f"  {number + 1}/{len(pairs)} pairs ({time.perf_counter() - started:.0f} s)",
              flush=True)  # fmt: skip
    config = variants["full VAE"].config_
    inner_per_image = sum(
        inner_steps_schedule(config.num_inference_steps, config.n_min, config.n_max, rate)
    )
    # One inner step, the two variants interleaved, on the modules the fits built.
    inner: dict[str, list[float]] = {name: [] for name in variants}
    inner_cpu: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(args.inner_rounds):
        order = list(variants) if round_index % 2 == 0 else list(variants)[::-1]
        for name in order:
            wall, cpu = time_inner_step(variants[name], pairs[0][0], args.inner_repeats)
            inner[name] += wall
            inner_cpu[name] += cpu
    return {
        "rows": rows,
        "unavailable_scorers": unavailable,
        "inner_step_seconds": inner,
        "inner_step_cpu_seconds": inner_cpu,
        "inner_steps_per_image": inner_per_image,
        "settings": config.to_dict(),
        "summary": summarise(rows, inner, inner_cpu, inner_per_image),
    }


def summarise(
    rows: list[dict],
    inner: dict[str, list[float]],
    inner_cpu: dict[str, list[float]],
    inner_per_image: int,
) -> dict:
    """Means, SEs and light-minus-full paired differences (wall and CPU time)."""
    summary: dict[str, Any] = {}
    metrics = list(rows[0]["scores"])
    full = {(r["prompt"], r["seed"]): r for r in rows if r["variant"] == "full VAE"}
    for name in ("full VAE", "light decoder"):
        mine = [r for r in rows if r["variant"] == name]
        entry: dict[str, Any] = {"n": len(mine)}
        entry["seconds_per_image"] = _mean_se([r["seconds"] for r in mine])
        entry["cpu_seconds_per_image"] = _mean_se([r["cpu_seconds"] for r in mine])
        entry["fit_ms_per_inner_step"] = 1e3 * entry["seconds_per_image"]["mean"] / inner_per_image
        entry["inner_step_ms_median"] = 1e3 * statistics.median(inner[name])
        entry["inner_step_cpu_ms_median"] = 1e3 * statistics.median(inner_cpu[name])
        for metric in metrics:
            entry[metric] = _mean_se([r["scores"][metric] for r in mine])
        if name != "full VAE":
            paired = {}
            for metric in metrics:
                diffs = [
                    r["scores"][metric] - full[(r["prompt"], r["seed"])]["scores"][metric]
                    for r in mine
                ]
                paired[metric] = _mean_se(diffs)
            entry["minus_full_vae"] = paired
            for key in ("seconds", "cpu_seconds"):
                ratios = [r[key] / full[(r["prompt"], r["seed"])][key] for r in mine]
                entry[f"{key}_ratio_to_full_vae"] = _mean_se(ratios)
        summary[name] = entry
    return summary


def model_identity(pipe: Any) -> dict[str, Any]:
    """Which model the numbers came from: its folder, weight hashes and last commit."""
    folder = Path(str(pipe.config._name_or_path))
    identity: dict[str, Any] = {"path": str(folder)}
    for part in ("unet", "vae"):
        weights = folder / part / "diffusion_pytorch_model.safetensors"
        if weights.is_file():
            identity[f"{part}_sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    try:
        done = subprocess.run(
            ["git", "log", "-1", "--format=%h %ad %s", "--date=short", "--", str(folder)],
            capture_output=True, text=True, cwd=Path(__file__).parent, timeout=30,
        )  # fmt: skip
        identity["last_commit"] = done.stdout.strip()[:90]
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", str(folder)],
            capture_output=True, text=True, cwd=Path(__file__).parent, timeout=30,
        )  # fmt: skip
        identity["uncommitted_changes"] = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return identity


def main(argv: list[str] | None = None) -> int:
    """Train (unless ``--skip-train``), measure (unless ``--skip-measure``), write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="embedded", help="'embedded' or a diffusers folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument(
        "--jvp-weight", type=float, default=1.0,
        help="weight of the directional-derivative match (0: values only)",
    )  # fmt: skip
    parser.add_argument("--jvp-scale", type=float, default=0.1, help="latent step for it")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--blocks", type=int, nargs="+", default=[2, 2, 1])
    parser.add_argument("--world-images", type=int, default=2048)
    parser.add_argument("--trajectories", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=160)
    parser.add_argument("--guidance-scale", type=float, default=5.0,
                        help="CFG scale of the training trajectories")  # fmt: skip
    parser.add_argument("--prompts", type=int, default=8, help="ShapesBench prompts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--denoise-steps", type=int, default=20)
    parser.add_argument("--inner-rounds", type=int, default=4)
    parser.add_argument("--inner-repeats", type=int, default=5)
    parser.add_argument("--skip-train", action="store_true", help="load the saved decoder")
    parser.add_argument("--skip-measure", action="store_true", help="train only")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderTiny

    from nulltta.loading import load_pipeline

    pipe = load_pipeline(args.model, args.device)
    folder = args.out / "decoder"
    record: dict[str, Any] = {
        "model": model_identity(pipe),
        "machine": f"{platform.processor() or 'CPU'}, {torch.multiprocessing.cpu_count()} cores"
        if args.device == "cpu"
        else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "note": args.note,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.skip_train:
        decoder = AutoencoderTiny.from_pretrained(folder).eval()
        # The held-out data only: no training.
        held = {
            "world": world_latents(pipe, args.held_out, args.seed + 1),
            "trajectory": trajectory_latents(
                pipe, max(1, args.held_out // args.denoise_steps), args.denoise_steps,
                args.seed + 1, args.guidance_scale,
            ),
        }  # fmt: skip
        previous = args.out / "results.json"
        if previous.is_file():
            record["training"] = json.loads(previous.read_text()).get("training")
    else:
        print(f"training the light decoder ({args.steps} steps)", flush=True)
        decoder, record["training"], held = train(pipe, args)
        folder.mkdir(parents=True, exist_ok=True)
        decoder.save_pretrained(folder)
    decoder = decoder.to(args.device)
    blocks = list(decoder.config.num_decoder_blocks)
    record["decoder"] = {
        "path": str(folder),
        "channels": decoder.config.decoder_block_out_channels[0],
        "blocks": blocks,
        "parameters": sum(p.numel() for p in decoder.decoder.parameters()),
    }
    from nulltta.profiles import model_profile
    from nulltta.rewards import get_reward

    reward = get_reward(model_profile(args.model, loaded=pipe).reward).eval()
    record["reconstruction"] = reconstruction(decoder, pipe, held)
    record["gradient"] = gradient_agreement(decoder, pipe, held, reward)
    print(json.dumps(record["reconstruction"]), json.dumps(record["gradient"]), flush=True)
    if not args.skip_measure:
        torch.set_flush_denormal(True)
        record["measurement"] = measure(pipe, decoder, args)
    text = markdown(record)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
