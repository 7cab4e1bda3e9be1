"""Images per hour against batch size: how much batched trajectories buy.

``NullTextAligner(batch_size=B).fit(prompts, seeds)`` aligns B trajectories
with one UNet, VAE and reward call per inner step for all of them. A small
model on a large device is bound by launch overhead, not arithmetic, so B
trajectories cost much less than B times one. This script measures it with
the method's settings (the release's schedule: 100 steps, 5-25 inner steps,
K = 3 candidates; the model's own CFG scale, KL settings and reward):

- on the CPU, on the embedded model (32x32);
- on CUDA, when a GPU is present, on Stable Diffusion 1.5's architecture with
  random weights at 512x512 (built from diffusers configs, nothing
  downloaded; the brightness reward, which needs no weights: the reward's
  own cost is then left out).

Batch sizes are interleaved over rounds in one process (the order reversed
every other round), so load on a shared machine hits them alike; each
measurement aligns one batch of B different (prompt, seed) pairs, and the
median over rounds is reported. On the CPU the process's CPU time is
reported beside the wall time: with one torch thread it is what the batch
costs on a core of its own, however much of the machine other jobs take
(images per CPU-hour). Results go to JSON and Markdown:

    nice -n 19 python benchmarks/throughput.py --device cpu --rounds 2
    python benchmarks/throughput.py --device cuda --rounds 2
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "throughput"


def build_aligner(device: str, batch_size: int, steps: int, reward: str | None):
    """The aligner and the prompts of the device's model."""
    from nulltta import NullTextAligner

    if device == "cpu":
        from nulltta.shapes.prompts import all_prompts

        prompts = all_prompts()[:: max(1, len(all_prompts()) // batch_size)][:batch_size]
        aligner = NullTextAligner(
            "embedded", reward, num_inference_steps=steps, batch_size=batch_size, device="cpu"
        )
        return aligner, prompts, "embedded (ShapesBench, 32x32)"
    from nulltta.testing import sd15_random_pipeline

    pipe = sd15_random_pipeline(seed=0).to(device)
    words = ["a red circle", "a blue square", "a green house", "a black cat", "a white dog",
             "a tree in the sky", "a painting of a sofa", "a photo of a house"]  # fmt: skip
    aligner = NullTextAligner(
        pipe, reward or "brightness", num_inference_steps=steps, batch_size=batch_size
    )
    return aligner, words[:batch_size], "SD1.5 architecture, random weights, 512x512"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(aligner, prompts, batch_sizes, rounds: int, device: str) -> dict:
    """Seconds to align one batch of each size, per round (None: out of memory)."""
    seconds: dict[int, list[float]] = {b: [] for b in batch_sizes}
    cpu_seconds: dict[int, list[float]] = {b: [] for b in batch_sizes}
    peak: dict[int, float] = {}
    out_of_memory: set[int] = set()
    steps = aligner.num_inference_steps
    aligner.set_params(num_inference_steps=2)  # warm-up: lazy loads, kernels, allocator
    for b in batch_sizes:
        aligner.fit(prompts[:b], seeds=list(range(b)))
    aligner.set_params(num_inference_steps=steps)
    for round_index in range(rounds):
        order = batch_sizes if round_index % 2 == 0 else list(reversed(batch_sizes))
        for b in order:
            if b in out_of_memory:
                continue
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            _sync(device)
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                aligner.fit(prompts[:b], seeds=list(range(b)))
            except torch.OutOfMemoryError:
                out_of_memory.add(b)
                torch.cuda.empty_cache()
                print(f"  round {round_index + 1}, batch {b}: out of memory", flush=True)
                continue
            _sync(device)
            seconds[b].append(time.perf_counter() - started)
            cpu_seconds[b].append(time.process_time() - cpu_started)
            if device.startswith("cuda"):
                peak[b] = max(peak.get(b, 0.0), torch.cuda.max_memory_allocated() / 2**30)
            print(
                f"  round {round_index + 1}, batch {b}: {seconds[b][-1]:.1f} s "
                f"({cpu_seconds[b][-1]:.1f} s CPU), {b / seconds[b][-1] * 3600:.1f} images/hour",
                flush=True,
            )
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_gib": peak,
        "out_of_memory": sorted(out_of_memory),
    }


def summarise(measured: dict, batch_sizes) -> list[dict]:
    rows = []
    base = cpu_base = None
    for b in batch_sizes:
        runs, cpu_runs = measured["seconds"][b], measured["cpu_seconds"][b]
        if not runs:
            rows.append({"batch_size": b, "out_of_memory": b in measured["out_of_memory"]})
            continue
        median, cpu_median = statistics.median(runs), statistics.median(cpu_runs)
        per_hour, per_cpu_hour = b / median * 3600, b / cpu_median * 3600
        if b == batch_sizes[0]:
            base, cpu_base = per_hour, per_cpu_hour
        peak = measured["peak_gib"].get(b)
        rows.append(
            {
                "batch_size": b,
                "seconds_per_batch": round(median, 2),
                "seconds_per_image": round(median / b, 2),
                "images_per_hour": round(per_hour, 1),
                "vs_batch_1": round(per_hour / base, 2) if base else None,
                "cpu_seconds_per_image": round(cpu_median / b, 2),
                "images_per_cpu_hour": round(per_cpu_hour, 1),
                "cpu_vs_batch_1": round(per_cpu_hour / cpu_base, 2) if cpu_base else None,
                "rounds": [round(s, 2) for s in runs],
                "cpu_rounds": [round(s, 2) for s in cpu_runs],
                "peak_gib": None if peak is None else round(peak, 2),
            }
        )
    return rows


def markdown(result: dict) -> str:
    settings = result["settings"]
    lines = [
        f"# Throughput against batch size: {result['device']}",
        "",
        f"- model: {result['model']}; reward: `{result['reward']}`",
        f"- settings: {settings['num_inference_steps']} steps, inner steps "
        f"{settings['n_min']}-{settings['n_max']} ({result['inner_steps_per_image']} per image), "
        f"K = {settings['num_candidates']}, CFG {settings['guidance_scale']}, "
        f"lambda2 {settings['kl_weight']}",
        f"- machine: {result['machine']}; torch threads: {result['threads']}",
        f"- {result['rounds']} rounds, batch sizes interleaved; medians over rounds",
    ]
    if result.get("note"):
        lines.append(f"- note: {result['note']}")
    cpu = result["device"] == "cpu"
    header = "| batch size | s per batch | s per image | images per hour | vs batch 1 |"
    header += " CPU s per image | images per CPU-hour | vs batch 1 |" if cpu else " peak GiB |"
    lines += ["", header, "|---" * (header.count("|") - 1) + "|"]
    for row in result["rows"]:
        if "images_per_hour" not in row:
            lines.append(f"| {row['batch_size']} | out of memory |")
            continue
        line = (
            f"| {row['batch_size']} | {row['seconds_per_batch']:.1f} | "
            f"{row['seconds_per_image']:.1f} | {row['images_per_hour']:.1f} | "
            f"{row['vs_batch_1']:.2f}x |"
        )
        if cpu:
            line += (
                f" {row['cpu_seconds_per_image']:.1f} | {row['images_per_cpu_hour']:.1f} | "
                f"{row['cpu_vs_batch_1']:.2f}x |"
            )
        else:
            line += " - |" if row["peak_gib"] is None else f" {row['peak_gib']:.1f} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--steps", type=int, default=100, help="denoising steps (100: the method's)"
    )
    parser.add_argument(
        "--reward", default=None, help="default: the model's (CPU), brightness (CUDA)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--note", default="", help="e.g. that the machine was shared")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    batch_sizes = sorted(args.batch_sizes)
    aligner, prompts, model = build_aligner(device, max(batch_sizes), args.steps, args.reward)
    print(f"{model} on {device}: batch sizes {batch_sizes}, {args.rounds} rounds", flush=True)
    measured = measure(aligner, prompts, batch_sizes, args.rounds, device)
    from nulltta.equations import inner_steps_schedule

    config = aligner.config_
    if device == "cuda":
        machine = torch.cuda.get_device_name()
    else:
        machine = f"{platform.processor() or 'CPU'}, {torch.multiprocessing.cpu_count()} cores"
    result = {
        "device": device,
        "model": model,
        "reward": aligner.reward if isinstance(aligner.reward, str) else aligner.profile_.reward,
        "settings": config.to_dict(),
        "inner_steps_per_image": sum(
            inner_steps_schedule(config.num_inference_steps, config.n_min, config.n_max)
        ),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rounds": args.rounds,
        "note": args.note,
        "rows": summarise(measured, batch_sizes),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{device}{'' if args.steps == 100 else f'_steps{args.steps}'}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
