"""``nulltta bench``: every method on the same prompts, seeds, model and rewards.

    nulltta bench --model embedded --target shapes-preference
        --heldout shapes-preference-heldout shapes-manifold
        --methods plain best-of-n:n=8 greedy dno das nulltta nulltta-fast
        --prompts prompts.txt --seeds 0 1 2 --steps 20 --out bench/

writes ``rows.jsonl`` (one row per image, as it finishes; a rerun skips
finished rows), ``results.json``, ``results.md``, ``pareto.png`` and
``grids/``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .methods import METHOD_PRESETS

__all__ = ["DEFAULT_METHODS", "add_bench_parser", "read_prompts", "run_bench"]

DEFAULT_METHODS = (
    "plain",
    "best-of-n",
    "greedy",
    "dno",
    "dno-noreg",
    "das",
    "nulltta",
    "nulltta-fast",
)


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with ``#`` are skipped."""
    lines = Path(path).read_text().splitlines()
    prompts = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ValueError(f"{path} holds no prompts (one per line)")
    return prompts


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``bench`` subcommand."""
    parser = subparsers.add_parser(
        "bench",
        help="compare Null-TTA with baselines on your model, prompts and rewards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="embedded", help="'embedded', a folder or a hub id")
    parser.add_argument("--target", default=None, help="target reward (default: the model's)")
    parser.add_argument("--heldout", nargs="*", default=None, help="held-out reward names")
    parser.add_argument(
        "--fidelity",
        default="auto",
        help="prompt-fidelity reward name, 'none', or 'auto' (the model's own measure: the "
        "ShapesBench classifier's accuracy for the embedded model; none otherwise)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(DEFAULT_METHODS),
        help=f"method specs 'name[:key=value...]'; names: {', '.join(METHOD_PRESETS)}",
    )
    parser.add_argument("--prompts", required=False, help="text file, one prompt per line")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100, help="sampling steps T (100)")
    parser.add_argument("--guidance-scale", type=float, default=None)
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu")
    parser.add_argument("--fp16", action="store_true", help="load the model in float16")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--title", default="Benchmark", help="title of the results table")
    parser.add_argument("--note", default="", help="a paragraph for the table's header")
    parser.add_argument("--out", default="bench", help="output folder (resumable)")
    parser.add_argument(
        "--shard",
        default="0/1",
        help="'i/n': run every n-th (prompt, seed) pair from the i-th, so n processes can "
        "share one --out; the last to finish writes the report (or use --report-only)",
    )
    parser.add_argument("--report-only", action="store_true", help="only rewrite the report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _model_defaults(args: argparse.Namespace) -> dict[str, Any]:
    """Target, held-out rewards, fidelity and set metrics from the model's profile."""
    from ..profiles import model_profile

    profile = model_profile(args.model)
    heldout = [*profile.heldout, *([profile.gold] if profile.gold else [])]
    fidelity = None if profile.fidelity is None else ("fidelity", profile.fidelity)
    return {
        "profile": profile,
        "target": profile.reward,
        "heldout": heldout,
        "fidelity": fidelity,
        "set_metrics": dict(profile.set_metrics),
    }


def _fidelity(choice: str, default: Any) -> tuple[str | None, Any]:
    from ..rewards import get_reward

    if choice == "none":
        return None, None
    if choice == "auto":
        return default if default is not None else (None, None)
    return choice, get_reward(choice).eval()


def run_bench(args: argparse.Namespace) -> int:
    """Run (or resume) the benchmark and write its report."""
    import torch

    from ..loading import load_pipeline
    from ..rewards import get_reward
    from .methods import make_method
    from .report import write_report
    from .runner import run_benchmark

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    defaults = _model_defaults(args)
    if args.report_only:
        write_report(args.out, defaults["set_metrics"])
        print(f"wrote {args.out}/results.md")
        return 0
    if args.prompts is None:
        raise ValueError("pass --prompts FILE (one prompt per line)")
    prompts = read_prompts(args.prompts)
    methods = {spec: make_method(spec) for spec in args.methods}
    index, _, count = args.shard.partition("/")
    shard = (int(index), int(count or 1))
    if not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard {args.shard}: write i/n with 0 <= i < n, e.g. 0/2 and 1/2")
    for prompt in dict.fromkeys(prompts):
        defaults["profile"].validate_prompt(prompt)
    pipeline = load_pipeline(args.model, args.device, torch.float16 if args.fp16 else None)
    device = next(pipeline.unet.parameters()).device
    target_name = args.target or defaults["target"]
    heldout_names = defaults["heldout"] if args.heldout is None else args.heldout
    target = get_reward(target_name).to(device).eval()
    heldout = {name: get_reward(name).to(device).eval() for name in heldout_names}
    fidelity_name, fidelity = _fidelity(args.fidelity, defaults["fidelity"])
    sampling = {
        "num_inference_steps": args.steps,
        "guidance_scale": args.guidance_scale,
        "height": args.height,
        "width": args.width,
    }
    description = {
        "title": args.title,
        "note": args.note,
        "model": str(args.model),
        "target": target_name,
        "heldout": heldout_names,
        "fidelity": fidelity_name,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    run_benchmark(
        pipeline,
        methods,
        prompts,
        args.seeds,
        target,
        args.out,
        heldout=heldout,
        fidelity=fidelity,
        sampling=sampling,
        description=description,
        progress=not args.quiet,
        shard=shard,
    )
    summary = write_report(args.out, defaults["set_metrics"])
    print((Path(args.out) / "results.md").read_text())
    print(
        f"wrote {args.out}/results.json, results.md, pareto.png and grids/ ({len(summary)} methods)"
    )
    return 0
