"""Command line: ``nulltta generate PROMPT``, ``run``, ``bench`` and ``rewards``.

``generate`` writes the aligned image (PNG with prompt, seed, rewards and
settings in its metadata), a plain-sampling image from the same seed beside
it, ``comparison.png`` (the two side by side, labelled with their rewards),
``rewards.png`` (the reward against the step) and the history as JSON. It
prints the target reward of both, and the model's gold reward where it has
one (the embedded model's ``shapes-gold``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .adapters import UnsupportedPipelineError
from .bench.cli import add_bench_parser, run_bench
from .cli_args import add_method_arguments, aligner_kwargs
from .run import add_run_parser, run_run

__all__ = ["build_parser", "main"]


def _png_metadata(info: dict[str, Any]) -> PngImagePlugin.PngInfo:
    metadata = PngImagePlugin.PngInfo()
    for key, value in info.items():
        metadata.add_text(key, value if isinstance(value, str) else json.dumps(value))
    return metadata


def _save_png(image: Image.Image, path: Path, info: dict[str, Any]) -> None:
    image.save(path, pnginfo=_png_metadata(info))


def _add_generate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="align one image to a reward",
        description=(
            "Run Null-TTA for PROMPT and write aligned.png, plain.png, comparison.png, "
            "rewards.png, history.json and summary.json."
        ),
    )
    parser.add_argument("prompt")
    add_method_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs", help="output folder (created)")
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-sampling image")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _evaluation_rewards(aligner: Any) -> dict[str, Any]:
    """The model's gold reward, if it has one, loaded for scoring the two images."""
    from .rewards import get_reward

    gold = aligner.profile_.gold
    if gold is None:
        return {}
    return {f"gold ({gold})": get_reward(gold).to(aligner.reward_fn_.device).eval()}


def _scores(aligner: Any, image: Image.Image, extra: dict[str, Any], prompt: str) -> dict:
    from .images import to_tensor

    pixels = to_tensor(image).to(aligner.reward_fn_.device)
    scores = {"target": aligner.score(image, prompt)}
    for name, reward in extra.items():
        scores[name] = float(reward(pixels, [prompt])[0])
    return scores


def _run_generate(args: argparse.Namespace) -> int:
    from .aligner import NullTextAligner
    from .figures import comparison_image, reward_curve

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    aligner = NullTextAligner(**aligner_kwargs(args), seed=args.seed, progress=not args.quiet)
    started = time.perf_counter()
    aligner.fit(args.prompt)
    seconds = time.perf_counter() - started
    reward_name = args.reward or aligner.profile_.reward
    extra = _evaluation_rewards(aligner)
    # Every score is of the saved 8-bit image, the one the user gets.
    results = {"aligned": _scores(aligner, aligner.image_, extra, args.prompt)}
    info = {
        "prompt": args.prompt,
        "seed": args.seed,
        "model": str(args.model),
        "reward_name": reward_name,
        "reward": results["aligned"]["target"],
        "config": aligner.config_.to_dict(),
        "method": "null-tta",
        "seconds": round(seconds, 2),
    }
    _save_png(aligner.image_, out / "aligned.png", {**info, "scores": results["aligned"]})
    aligner.history_.to_json(out / "history.json")
    written = ["aligned.png", "history.json"]
    if not args.no_plain:
        plain = aligner.sample_baseline(args.prompt, seed=args.seed)[0]
        results["plain"] = _scores(aligner, plain, extra, args.prompt)
        plain_info = {**info, "reward": results["plain"]["target"], "method": "plain-cfg"}
        _save_png(plain, out / "plain.png", {**plain_info, "scores": results["plain"]})
        labels = [
            [name, *(f"{key}: {value:.3f}" for key, value in results[name].items())]
            for name in ("plain", "aligned")
        ]
        comparison_image([plain, aligner.image_], labels).save(out / "comparison.png")
        written += ["plain.png", "comparison.png"]
    if reward_curve(aligner.history_, out / "rewards.png", f"{args.prompt} (seed {args.seed})"):
        written.append("rewards.png")
    (out / "summary.json").write_text(json.dumps({**info, "scores": results}, indent=1))
    for key in results["aligned"]:
        name = f"target ({reward_name})" if key == "target" else key
        line = f"{name}: aligned {results['aligned'][key]:.4f}"
        if "plain" in results:
            line += f", plain {results['plain'][key]:.4f} (same seed)"
        print(line)
    print(f"{seconds:.1f} s; wrote {', '.join(f'{out}/{name}' for name in written)}")
    return 0


def _run_rewards(args: argparse.Namespace) -> int:
    try:
        from .rewards.listing import format_reward_table
    except ImportError:  # the learned reward suite is optional in a partial install
        from .rewards import reward_specs

        for spec in reward_specs():
            print(f"{spec.name:24s} {spec.description}")
        return 0
    print(format_reward_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``nulltta`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="nulltta", description="Test-time alignment of text-to-image diffusion models."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_generate(subparsers)
    subparsers.add_parser("rewards", help="list the rewards and whether their weights are found")
    add_bench_parser(subparsers)
    add_run_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nulltta`` command."""
    args = build_parser().parse_args(argv)
    commands = {
        "generate": _run_generate,
        "rewards": _run_rewards,
        "bench": run_bench,
        "run": run_run,
    }
    try:
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, UnsupportedPipelineError) as error:
        print(f"nulltta {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
