"""nulltta beside the authors' release: same pipeline, prompts, seeds, schedule and reward.

    python benchmarks/vs_release.py --json benchmarks/results/vs_release/cpu.json
    python benchmarks/vs_release.py --device cuda --model sd15-random --resolution 512 \\
        --prompts 2 --seeds 0 --json benchmarks/results/vs_release/cuda.json

The release is ``CFGOptWithBeamSearch.optimize`` from the authors' script
(``--release``, default the shared copy; it is imported from that path, never
copied). Both run the release's settings (lr 1e-2, n_min 5, n_max 25, K = 3,
reward weight 100, lambda2 0.002 annealed, sigma_phi^2 0.01, paper KL) on the
release's schedule shape compressed to ``--steps`` (``compressed_rate``), with
the model's CFG scale. Runs are interleaved in one process, chunk by chunk
(release, nulltta at batch 1, nulltta batched), the order alternating between
chunks, so machine noise hits them alike.

Printed: time per image and its ratio to the release, peak memory, and the
distributions of the target, held-out, gold and fidelity of the saved (8-bit)
images, with paired differences. The two draw different noise (the release
seeds its candidates by the timestep), so rewards agree in distribution, not
image by image. ``pairs needed`` is how many (prompt, seed) pairs make the
paired fidelity difference's 2-standard-error half-width 5 points.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from nulltta.bench.methods import RELEASE_KL

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RELEASE = REPO.parent / "shared" / "anchors" / "null_tta_sd_release.py"
#: The release's KL settings, step size and inner-step order (whatever the
#: model's defaults are), with the rest of its method settings.
RELEASE_SETTINGS = {
    **RELEASE_KL,
    "n_min": 5,
    "n_max": 25,
    "num_candidates": 3,
    "reward_weight": 100.0,
    "sigma_phi_sq": 0.01,
    "kl_mode": "paper",
}


def load_release(path: Path, device: torch.device) -> Any:
    """Import the release script from ``path`` and point its module-global device at ours."""
    if not path.is_file():
        raise FileNotFoundError(
            f"no release script at {path}; pass --release PATH to the authors' null_tta_sd.py"
        )
    spec = importlib.util.spec_from_file_location("null_tta_release", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.device = str(device)
    return module


def run_release(release: Any, pipe: Any, prompt: str, seed: int, reward: Any, args) -> torch.Tensor:
    """One image with ``CFGOptWithBeamSearch.optimize`` (the best of its final candidates)."""
    from diffusers import DDIMScheduler

    from nulltta.bench.base import compressed_rate

    saved = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(saved.config)
    pipe.scheduler.set_timesteps(args.steps, device=pipe.device)
    try:
        optimizer = release.CFGOptWithBeamSearch(
            pipe,
            guidance_scale=args.guidance_scale,
            num_inference_steps=args.steps,
            lr_uncond=RELEASE_SETTINGS["learning_rate"],
            min_inner_steps=RELEASE_SETTINGS["n_min"],
            max_inner_steps=RELEASE_SETTINGS["n_max"],
            lambda_alpha=RELEASE_SETTINGS["reward_weight"],
            lambda_beta=RELEASE_SETTINGS["kl_weight"],
            lambda_gamma=RELEASE_SETTINGS["sigma_phi_sq"],
            num_beams=RELEASE_SETTINGS["num_candidates"],
            tampering_coef=compressed_rate(args.steps),
        )
        k = RELEASE_SETTINGS["num_candidates"]
        factor = pipe.vae_scale_factor
        shape = (k, pipe.unet.config.in_channels, args.height // factor, args.width // factor)
        generator = torch.Generator(pipe.device).manual_seed(seed)
        x_t = torch.randn(shape, generator=generator, device=pipe.device, dtype=pipe.unet.dtype)

        def reward_fn(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
            return reward.score_trusted(images.float(), list(prompts))

        images, best = optimizer.optimize(prompt, "", reward_fn, x_t)
    finally:
        pipe.scheduler = saved
    return images[best : best + 1].float()


def nulltta_aligner(pipe: Any, reward: Any, args, batch_size: int) -> Any:
    """The estimator with the release's settings."""
    from nulltta import NullTextAligner
    from nulltta.bench.base import compressed_rate

    return NullTextAligner(
        pipe,
        reward,
        guidance_scale=args.guidance_scale,
        num_inference_steps=args.steps,
        height=args.height,
        width=args.width,
        schedule_rate=compressed_rate(args.steps),
        batch_size=batch_size,
        **RELEASE_SETTINGS,
    )


def build(args) -> tuple[Any, Any, dict[str, Any]]:
    """The pipeline, the target reward and the evaluation scorers."""
    from nulltta.bench.scoring import evaluation_scorers
    from nulltta.loading import load_pipeline
    from nulltta.profiles import model_profile
    from nulltta.rewards import get_reward

    device = torch.device(args.device)
    if args.model == "sd15-random":
        from nulltta.testing import sd15_random_pipeline

        pipe = sd15_random_pipeline().to(device)
    else:
        pipe = load_pipeline(args.model, device)
    from nulltta.adapters import make_adapter

    adapter = make_adapter(pipe)
    profile = model_profile(args.model, adapter, loaded=pipe)
    if args.guidance_scale is None:
        args.guidance_scale = profile.defaults.get("guidance_scale", adapter.default_guidance_scale)
    if args.height is None:
        args.height, args.width = adapter.default_resolution()
    target = get_reward(args.reward or profile.reward).to(device).eval()
    scorers = evaluation_scorers(profile, args.reward, device)
    return pipe, target, scorers


def summarise(rows: list[dict], methods: list[str]) -> dict[str, Any]:
    """Means, standard errors, paired differences against the release, time ratios."""
    summary: dict[str, Any] = {}
    release = [r for r in rows if r["method"] == "release"]
    metrics = [k for k in release[0]["scores"]]
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        entry: dict[str, Any] = {"n": len(mine)}
        entry["seconds_per_image"] = statistics.mean(r["seconds"] for r in mine)
        entry["peak_memory_mb"] = max(r["peak_memory_mb"] for r in mine)
        for metric in metrics:
            values = [r["scores"][metric] for r in mine]
            entry[metric] = _mean_se(values)
            if method != "release":
                paired = {(r["prompt"], r["seed"]): r["scores"][metric] for r in release}
                diffs = [r["scores"][metric] - paired[(r["prompt"], r["seed"])] for r in mine]
                entry[f"{metric}_minus_release"] = _mean_se(diffs)
                if metric == "fidelity" and len(diffs) > 1:
                    sd = statistics.stdev(diffs)
                    entry["pairs_needed_for_5_points"] = math.ceil((2 * sd / 0.05) ** 2)
        summary[method] = entry
    base = summary["release"]["seconds_per_image"]
    for entry in summary.values():
        entry["time_vs_release"] = entry["seconds_per_image"] / base
    return summary


def _mean_se(values: list[float]) -> dict[str, float]:
    mean = statistics.mean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": mean, "se": se}


def release_caveat(prediction_type: str) -> str | None:
    """Why the reward columns do not compare the two on a non-epsilon model, or None.

    The release's Tweedie estimate, ``tweedie_x0_from_eps``, reads the UNet's
    output as epsilon whatever the scheduler says it predicts.
    """
    if prediction_type == "epsilon":
        return None
    return (
        f"The UNet predicts {prediction_type!r}, and the release reads its output as epsilon "
        "in its Tweedie estimate, so its reward gradients and greedy selection see a wrong "
        "x0_hat: the reward columns do not compare the methods here; the times do."
    )


def markdown(summary: dict[str, Any], args, caveat: str | None = None) -> str:
    """The results table, after the caveat when there is one."""
    metrics = [k for k, v in summary["release"].items() if isinstance(v, dict)]
    head = "| method | s / image | x release | peak MB | " + " | ".join(metrics) + " |"
    lines = [
        f"# nulltta against the release ({args.model}, {args.device}, {args.steps} steps)",
        "",
        *([f"**{caveat}**", ""] if caveat else []),
        head,
        "|" + "---|" * (4 + len(metrics)),
    ]
    for method, entry in summary.items():
        cells = [f"{entry[m]['mean']:.3f} ± {entry[m]['se']:.3f}" for m in metrics]
        lines.append(
            f"| {method} | {entry['seconds_per_image']:.2f} | {entry['time_vs_release']:.2f} | "
            f"{entry['peak_memory_mb']:.0f} | " + " | ".join(cells) + " |"
        )
    lines.append("")
    for method, entry in summary.items():
        if method == "release":
            continue
        diffs = ", ".join(
            f"{k[: -len('_minus_release')]} {v['mean']:+.3f} ± {v['se']:.3f}"
            for k, v in entry.items()
            if k.endswith("_minus_release")
        )
        needed = entry.get("pairs_needed_for_5_points")
        lines.append(f"- {method} minus release (paired, mean ± SE): {diffs}")
        if needed is not None:
            lines.append(f"  - pairs needed to see a 5-point fidelity difference: {needed}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write JSON and Markdown."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--release", type=Path, default=DEFAULT_RELEASE)
    parser.add_argument("--model", default="embedded", help="'embedded', 'sd15-random' or a folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reward", default=None, help="target reward (default: the model's)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=16, help="ShapesBench prompts (cycled)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=8, help="nulltta's batched variant")
    parser.add_argument("--guidance-scale", type=float, default=None)
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.height = args.width = args.resolution
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    from nulltta.bench.cost import measure
    from nulltta.bench.scoring import score_images
    from nulltta.bench.shapesbench import shapesbench_prompts

    release = load_release(args.release, torch.device(args.device))
    pipe, target, scorers = build(args)
    caveat = release_caveat(pipe.scheduler.config.prediction_type)
    if caveat:
        print(f"warning: {caveat}", file=sys.stderr)
    pairs = [(p, s) for p in shapesbench_prompts(args.prompts) for s in args.seeds]
    batched = f"nulltta (batch {args.batch_size})"
    methods = ["release", "nulltta (batch 1)", batched]
    rows: list[dict] = []
    single = nulltta_aligner(pipe, target, args, 1)
    several = nulltta_aligner(pipe, target, args, args.batch_size)
    device = torch.device(args.device)
    started = time.perf_counter()
    for number, start in enumerate(range(0, len(pairs), args.batch_size)):
        chunk = pairs[start : start + args.batch_size]
        order = methods if number % 2 == 0 else methods[::-1]
        for method in order:
            if method == batched:
                with measure(device) as cost:
                    several.fit([p for p, _ in chunk], seeds=[s for _, s in chunk])
                pixels = torch.cat([_pixels(im) for im in several.images_]).to(device)
                per_image = [cost.seconds / len(chunk)] * len(chunk)
                peaks = [cost.peak_memory_delta_mb] * len(chunk)
            else:
                images, per_image, peaks = [], [], []
                for prompt, seed in chunk:
                    with measure(device) as cost:
                        if method == "release":
                            images.append(run_release(release, pipe, prompt, seed, target, args))
                        else:
                            single.set_params(seed=seed).fit(prompt)
                            images.append(_pixels(single.image_).to(device))
                    per_image.append(cost.seconds)
                    peaks.append(cost.peak_memory_delta_mb)
                pixels = torch.cat(images)
            scores = score_images(pixels.to(device), [p for p, _ in chunk], scorers)
            for (prompt, seed), value, seconds, peak in zip(
                chunk, scores, per_image, peaks, strict=True
            ):
                rows.append(
                    {"method": method, "prompt": prompt, "seed": seed, "scores": value,
                     "seconds": seconds, "peak_memory_mb": peak}
                )  # fmt: skip
        print(f"{len(rows) // 3}/{len(pairs)} pairs ({time.perf_counter() - started:.0f} s)")
    summary = summarise(rows, methods)
    text = markdown(summary, args, caveat)
    print(text)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        settings["release"] = str(args.release)
        payload = {"settings": settings, "summary": summary, "rows": rows}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
        args.json.with_suffix(".md").write_text(text)
    return 0


def _pixels(image: Any) -> torch.Tensor:
    from nulltta.images import to_tensor

    return to_tensor(image)


if __name__ == "__main__":
    sys.exit(main())
