"""Run methods over prompts and seeds; one JSON row per finished image.

Rows are appended to ``rows.jsonl`` as they finish (one write and ``fsync``
each, :func:`nulltta.jsonl.append_row`), so an interrupted run loses at most
the image in progress: a partial last line left by a crash is skipped on
reading and removed before the next append. A rerun skips every ``(method,
prompt, seed)`` already there. ``run.json`` records the shared settings; a
rerun with different settings is refused rather than mixed in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..aligner import to_pil
from ..jsonl import append_row, read_rows
from ..rewards import Reward
from .base import Method, Task
from .cost import CostCounter, measure

__all__ = ["ROWS_FILE", "RUN_FILE", "load_rows", "quantize", "run_benchmark"]

ROWS_FILE = "rows.jsonl"
RUN_FILE = "run.json"

Scorer = Callable[[Tensor, list[str]], Tensor]


def quantize(images: Tensor) -> Tensor:
    """Round images to 8 bits, as saved: every method is scored on what a user gets."""
    return (images.detach().float().clamp(0, 1) * 255).round() / 255


def load_rows(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every row written so far; a partial last line is skipped (see nulltta.jsonl)."""
    return read_rows(Path(out_dir) / ROWS_FILE)


def _label_dir(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


def _check_run_file(
    out_dir: Path, run: dict[str, Any], defaults: dict[str, dict[str, Any]] | None = None
) -> None:
    """Write ``run.json``, or merge into the one there if it ran the same settings.

    ``defaults`` holds each label's setting defaults: a setting that a method
    gained after the stored run counts as unchanged while it is at its default.
    """
    path = out_dir / RUN_FILE
    defaults = defaults or {}
    if path.exists():
        old = json.loads(path.read_text())
        changed = [k for k in run if k != "methods" and old.get(k) != run[k]]
        clash = [
            label
            for label, settings in run["methods"].items()
            if label in old.get("methods", {})
            and {**defaults.get(label, {}), **old["methods"][label]} != settings
        ]
        if changed or clash:
            raise ValueError(
                f"{out_dir} holds a run with other settings ({', '.join(changed + clash)} "
                "differ); rerun with the same settings to resume, or choose another --out."
            )
        run = {**run, "methods": {**old.get("methods", {}), **run["methods"]}}
    path.write_text(json.dumps(run, indent=1))


@torch.no_grad()
def _evaluate(
    image: Tensor, prompt: str, target: Reward, heldout: dict[str, Reward], fidelity: Scorer | None
) -> dict[str, Any]:
    return {
        "target": float(target(image, [prompt])[0]),
        "heldout": {name: float(reward(image, [prompt])[0]) for name, reward in heldout.items()},
        "fidelity": None if fidelity is None else float(fidelity(image, [prompt])[0]),
    }


def run_benchmark(
    pipeline: Any,
    methods: dict[str, Method],
    prompts: Sequence[str],
    seeds: Sequence[int],
    target: Reward,
    out_dir: str | Path,
    heldout: dict[str, Reward] | None = None,
    fidelity: Scorer | None = None,
    sampling: dict[str, Any] | None = None,
    description: dict[str, Any] | None = None,
    progress: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> list[dict[str, Any]]:
    """Generate one image per (method, prompt, seed), score it and measure its cost.

    Parameters
    ----------
    pipeline : diffusers pipeline
        Shared by every method.
    methods : dict of str to Method
        Label -> method; the label names the rows and the table line.
    prompts, seeds : sequences
        Every prompt is run with every seed.
    target : Reward
        The reward every method optimises (and the only one it sees).
    out_dir : path
        Where ``run.json``, ``rows.jsonl`` and ``images/`` go.
    heldout : dict of str to Reward, optional
        Rewards only used to score the results.
    fidelity : callable, optional
        ``(images, prompts) -> scores`` of prompt fidelity.
    sampling : dict, optional
        ``num_inference_steps``, ``guidance_scale``, ``height``, ``width``
        shared by every method (see :class:`~nulltta.bench.base.Task`).
    description : dict, optional
        Names of the model and rewards, saved in ``run.json`` for the report.
    progress : bool, default=True
        Show a progress bar.
    shard : (int, int), default=(0, 1)
        ``(i, n)``: run only the (prompt, seed) pairs whose index is ``i``
        modulo ``n``, every method of each. ``n`` processes with ``i = 0 ..
        n - 1`` can share one ``out_dir`` (rows are appended line by line).

    Returns
    -------
    list of dict
        Every row of the run, old and new.

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    heldout = heldout or {}
    sampling = dict(sampling or {})
    run = {
        **(description or {}),
        "sampling": sampling,
        "prompts": list(prompts),
        "methods": {
            label: {"class": type(m).__name__, "follows": m.follows, **m.settings()}
            for label, m in methods.items()
        },
    }
    _check_run_file(out, run, {label: m.default_settings() for label, m in methods.items()})
    done = {(r["method"], r["prompt"], r["seed"]) for r in load_rows(out)}
    pairs = [(index, prompt, seed) for index, prompt in enumerate(prompts) for seed in seeds]
    jobs = [
        (index, prompt, seed, label)
        for number, (index, prompt, seed) in enumerate(pairs)
        if number % shard[1] == shard[0]
        for label in methods  # methods interleaved: machine load hits them alike
    ]
    todo = [job for job in jobs if (job[3], job[1], job[2]) not in done]
    device = next(pipeline.unet.parameters()).device
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), disable=not progress, unit="img")
    for index, prompt, seed, label in todo:
        bar.set_postfix_str(f"{label} p{index} s{seed}")
        task = Task(pipeline, prompt, seed, target, **sampling)
        counter = CostCounter(pipeline.unet, pipeline.vae.decoder, target)
        with measure(device) as cost, counter:
            output = methods[label].run(task)
        image = quantize(output.image[:1])
        relative = Path("images") / _label_dir(label) / f"p{index:03d}_s{seed}.png"
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        to_pil(image)[0].save(out / relative)
        row = {
            "method": label,
            "prompt": prompt,
            "prompt_index": index,
            "seed": seed,
            **_evaluate(image.to(device), prompt, target, heldout, fidelity),
            "seconds": cost.seconds,
            "peak_memory_mb": cost.peak_memory_mb,
            "peak_memory_delta_mb": cost.peak_memory_delta_mb,
            "memory_kind": cost.memory_kind,
            **counter.counts.as_dict(),
            "image": str(relative),
            "info": output.info,
        }
        append_row(out / ROWS_FILE, row)
        bar.update(1)
    bar.close()
    return load_rows(out)
