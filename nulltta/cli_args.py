"""The method flags shared by ``nulltta generate`` and ``nulltta run``.

:func:`add_method_arguments` registers them on a parser and
:func:`aligner_kwargs` turns the parsed values into
:class:`~nulltta.NullTextAligner` keyword arguments, so both commands accept
exactly the same settings with the same defaults (None: the model's value).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_method_arguments", "aligner_kwargs"]


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the model, reward and method flags on ``parser``."""
    parser.add_argument(
        "--model",
        default="embedded",
        help="'embedded' (default: the small model shipped with nulltta), a diffusers folder, "
        "or a hub id",
    )
    parser.add_argument(
        "--reward",
        default=None,
        help="reward name (see 'nulltta rewards'); "
        "default: the model's own (shapes-preference for the embedded model)",
    )
    parser.add_argument("--steps", type=int, default=100, help="sampling steps (100)")
    parser.add_argument("--n-min", type=int, default=5)
    parser.add_argument("--n-max", type=int, default=25)
    parser.add_argument(
        "--inner-steps-order", choices=("ramp_up", "ramp_down"), default=None,
        help="ramp_up (as released): fewest inner steps at the noisiest steps; ramp_down: "
        "reversed (default: the model's)",
    )  # fmt: skip
    parser.add_argument("--candidates", type=int, default=3, help="greedy candidates K (3)")
    parser.add_argument("--guidance-scale", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None, help="Adam step size (the model's)")
    parser.add_argument("--kl-mode", choices=("paper", "exact"), default="paper")
    parser.add_argument(
        "--kl-weight", type=float, default=None, help="lambda2 (default: the model's)"
    )
    parser.add_argument(
        "--kl-annealing",
        choices=("on", "off"),
        default=None,
        help="anneal lambda2 to zero as released (default: the model's setting)",
    )
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--device", default=None, help="e.g. cuda, cuda:1, cpu")
    parser.add_argument("--fp16", action="store_true", help="load the model in float16")
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute UNet/VAE activations in the backward pass (less memory, more time)",
    )
    parser.add_argument(
        "--decode-scale",
        type=float,
        default=1.0,
        help="decode x0_hat for the reward's gradient at this fraction of the size "
        "(0.5: a quarter of the VAE's memory and time; changes results)",
    )


def aligner_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """:class:`~nulltta.NullTextAligner` keyword arguments from the parsed method flags."""
    import torch

    return {
        "pipeline": args.model,
        "reward": args.reward,
        "guidance_scale": args.guidance_scale,
        "num_inference_steps": args.steps,
        "n_min": args.n_min,
        "n_max": args.n_max,
        "inner_steps_order": args.inner_steps_order,
        "num_candidates": args.candidates,
        "learning_rate": args.lr,
        "kl_mode": args.kl_mode,
        "kl_weight": args.kl_weight,
        "anneal_kl": None if args.kl_annealing is None else args.kl_annealing == "on",
        "height": args.height,
        "width": args.width,
        "device": args.device,
        "torch_dtype": torch.float16 if args.fp16 else None,
        "gradient_checkpointing": args.gradient_checkpointing,
        "decode_scale": args.decode_scale,
    }
