"""``nulltta run``: align a prompt set, every prompt with every seed, on one or many devices.

>>> nulltta run --prompts prompts.txt --seeds 0 1 2 --batch-size 4 --devices 2 --out runs/a

Everything that can be checked without a model is checked before Fabric
starts the processes: the output folder, the prompts file, the plan and the
settings of an earlier run in the same folder. See
``docs/how-to/prompt-sets.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..cli_args import add_method_arguments, aligner_kwargs
from .align import out_of_memory_message
from .errors import RunError, RunInterrupted
from .files import check_writable
from .job import RunJob
from .plan import make_plan
from .prompts import read_prompts
from .settings import check_or_record_settings

__all__ = ["add_run_parser", "run_run"]


def add_run_parser(subparsers: Any) -> None:
    """Register ``nulltta run`` and its flags (the method flags are ``generate``'s)."""
    parser = subparsers.add_parser(
        "run",
        help="align a prompt set (every prompt with every seed) on one or many devices",
        description="Align every prompt of --prompts with every seed of --seeds, --batch-size "
        "trajectories at a time, on --devices devices per node (Lightning Fabric). Writes "
        "images/*.png, manifest.jsonl, summary.md and grid.png to --out; rerun the same "
        "command to resume.",
    )
    parser.add_argument(
        "--prompts", required=True, help="text file, one prompt a line (# comments)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (0)")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="trajectories aligned together (1)"
    )
    parser.add_argument("--devices", type=int, default=1, help="processes per node (1)")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (1)")
    parser.add_argument("--accelerator", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--out", required=True, help="output folder (created; resumable)")
    parser.add_argument(
        "--heldout",
        nargs="*",
        default=None,
        help="rewards reported beside the target (default: the model's held-out and gold "
        "rewards; give the flag alone for none)",
    )
    parser.add_argument(
        "--grid-prompts", type=int, default=4, help="prompts in grid.png, plain vs aligned (4)"
    )
    parser.add_argument(
        "--allow-truncation",
        action="store_true",
        help="align prompts longer than the text encoder takes, cut to its length",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_method_arguments(parser)


def _resolve_accelerator(name: str) -> str:
    """``auto`` as Fabric resolves it, so that ``run.json`` records the device type used."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _is_rank_zero() -> bool:
    """Whether this process is rank 0 (from the launchers' environment variables)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _prepare(args: argparse.Namespace) -> tuple[RunJob, str]:
    """Every check that needs no model, in the order that costs least."""
    if args.device is not None:
        raise RunError(
            f"--device {args.device}: nulltta run puts each process on its own device; choose "
            "them with --accelerator and --devices (e.g. --accelerator cuda --devices 4)"
        )
    for flag, value in (("--devices", args.devices), ("--num-nodes", args.num_nodes)):
        if value < 1:
            raise RunError(f"{flag} {value} must be at least 1")
    if args.grid_prompts < 0:
        raise RunError(f"--grid-prompts {args.grid_prompts} must be 0 or more")
    out = check_writable(args.out)
    prompt_set = read_prompts(args.prompts)
    plan = make_plan(prompt_set.prompts, args.seeds, args.batch_size)
    kwargs = aligner_kwargs(args)
    kwargs.pop("device")
    accelerator = _resolve_accelerator(args.accelerator)
    settings = {key: value for key, value in kwargs.items() if key != "torch_dtype"}
    settings.update(
        dtype="float16" if args.fp16 else "float32",
        accelerator=accelerator,
        prompts=prompt_set.prompts,
        seeds=list(args.seeds),
        heldout=args.heldout,
        allow_truncation=args.allow_truncation,
    )
    check_or_record_settings(out, settings)
    job = RunJob(
        out=out,
        prompt_set=prompt_set,
        plan=plan,
        aligner_kwargs=kwargs,
        batch_size=args.batch_size,
        heldout=args.heldout,
        allow_truncation=args.allow_truncation,
        grid_prompts=args.grid_prompts,
        progress=not args.quiet,
    )
    return job, accelerator


def run_run(args: argparse.Namespace) -> int:
    """Run ``nulltta run``; returns the exit status.

    0 when every image was made, 1 when some failed (listed in
    ``summary.md``), 2 for an error that stopped the run, and ``128 + signum``
    when SIGTERM or SIGINT stopped it.
    """
    import torch

    try:
        job, accelerator = _prepare(args)
        if _is_rank_zero():
            images = sum(len(batch.items) for batch in job.plan)
            print(f"nulltta run: {args.prompts}: {job.prompt_set.report()}", file=sys.stderr)
            print(
                f"nulltta run: {images} images in {len(job.plan)} batches of up to "
                f"{args.batch_size}, on {args.devices} device(s) x {args.num_nodes} node(s)",
                file=sys.stderr,
            )
        from .launch import interrupts_as_exceptions, make_run_fabric
        from .worker import run_worker

        fabric = make_run_fabric(accelerator, args.devices, args.num_nodes)
        with interrupts_as_exceptions(fabric):
            counts = fabric.launch(run_worker, job)
    except RunError as error:
        print(f"nulltta run: error: {error}", file=sys.stderr)
        return 2
    except torch.OutOfMemoryError:  # outside a batch: loading, held-out rewards, plain samples
        message = out_of_memory_message(args.batch_size, None, in_batch=False)
        print(f"nulltta run: error: {message}", file=sys.stderr)
        return 2
    except RunInterrupted as interrupt:
        print(_interrupted_message(args.out, interrupt.args[0]), file=sys.stderr)
        return interrupt.exit_code
    except KeyboardInterrupt:
        print(_interrupted_message(args.out, "SIGINT"), file=sys.stderr)
        return 130
    if not _is_rank_zero():
        return 0
    print(
        f"nulltta run: {counts['images']} images in {job.out}: {counts['ok']} ok, "
        f"{counts['flagged']} flagged, {counts['failed']} failed; see {job.out}/summary.md",
        file=sys.stderr,
    )
    return 1 if counts["failed"] or counts["missing"] else 0


def _interrupted_message(out: str | Path, signal_name: str) -> str:
    return (
        f"nulltta run: stopped by {signal_name}; the images finished so far are kept in {out} "
        "(manifest.jsonl lists them). Run the same command again to finish the run."
    )
