"""The end of a run (rank 0): the manifest, plain samples, ``grid.png`` and ``summary.md``.

Nothing here depends on timing, ranks or which run made which image, so a
run that was interrupted and resumed ends with the same files, byte for
byte, as one that was not.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from ..images import to_pil
from .files import atomic_write, png_bytes, read_png_metadata
from .job import RunJob
from .manifest import FINISHED, read_part_rows, write_manifest
from .model import LoadedModel, score_heldout
from .plan import WorkItem

__all__ = ["finish_run", "grid_image", "summary_markdown"]

GRID_FILE = "grid.png"
SUMMARY_FILE = "summary.md"
_MIN_CELL = 128  # small images (the embedded model's 32x32) are enlarged to this in the grid


def _grid_items(job: RunJob, rows: dict[str, dict]) -> list[WorkItem]:
    """The first ``grid_prompts`` prompts' first-seed images that were made."""
    chosen: dict[int, WorkItem] = {}
    for batch in job.plan:
        for item in batch.items:
            if len(chosen) == job.grid_prompts:
                return list(chosen.values())
            made = rows.get(item.key, {}).get("status") in FINISHED
            if item.prompt_index not in chosen and made:
                chosen[item.prompt_index] = item
    return list(chosen.values())


def plain_image(job: RunJob, model: LoadedModel, item: WorkItem) -> tuple[Image.Image, dict]:
    """Plain CFG sample of ``item`` (same sampler and seed), made once and kept in ``plain/``."""
    path = job.out / "plain" / f"{item.key}.png"
    if path.exists():
        try:
            with Image.open(path) as image:
                image.load()
                return image.convert("RGB"), read_png_metadata(path)
        except (OSError, ValueError):
            pass  # unreadable: made again below
    aligner = model.aligner
    progress = aligner.progress
    aligner.set_params(progress=False)  # a few quick samples: the bar would only flicker
    try:
        pixels = aligner.sample_baseline(item.prompt, n_images=1, seed=item.seed, output_type="pt")
    finally:
        aligner.set_params(progress=progress)
    with torch.no_grad():
        reward = aligner.reward_fn_(pixels.to(aligner.reward_fn_.device), [item.prompt])
    image = to_pil(pixels)[0]
    scores, _ = score_heldout(model.heldout, [image], [item.prompt])
    metadata = {
        "prompt": item.prompt,
        "seed": item.seed,
        "key": item.key,
        "model": str(job.aligner_kwargs.get("pipeline")),
        "reward_name": model.reward_name,
        "reward": float(reward[0]),
        "heldout": {name: values[0] for name, values in scores.items()},
        "method": "plain-cfg",
    }
    atomic_write(path, png_bytes(image, metadata))
    return image, metadata


def grid_image(plain: list[Image.Image], aligned: list[Image.Image], gap: int = 4) -> Image.Image:
    """Plain images on the top row, aligned ones below, one column per prompt."""
    width, height = aligned[0].size
    scale = max(1, math.ceil(_MIN_CELL / min(width, height)))
    cell = (width * scale, height * scale)
    columns = len(aligned)
    grid = Image.new(
        "RGB", (columns * cell[0] + (columns + 1) * gap, 2 * cell[1] + 3 * gap), "white"
    )
    for row, images in enumerate((plain, aligned)):
        for column, image in enumerate(images):
            box = (gap + column * (cell[0] + gap), gap + row * (cell[1] + gap))
            grid.paste(image.resize(cell, Image.Resampling.NEAREST), box)
    return grid


def _mean(values: list[Any]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _text(prompt: str) -> str:
    return prompt.replace("|", "\\|")


def summary_markdown(
    job: RunJob, model: LoadedModel, rows: dict[str, dict], comparisons: list[tuple]
) -> str:
    """``summary.md``: rewards per prompt and overall, plain against aligned, failures, flags."""
    items = [item for batch in job.plan for item in batch.items]
    names = list(model.heldout)
    statuses = [rows.get(item.key, {}).get("status", "missing") for item in items]
    count = {s: statuses.count(s) for s in ("ok", "flagged", "failed", "missing")}
    seeds = len({item.seed for item in items})
    prompts = job.prompt_set.prompts
    label = {name: "gold" if name == model.gold else "held-out" for name in names}
    lines = [
        "# nulltta run",
        "",
        f"- model: `{job.aligner_kwargs.get('pipeline')}`; target reward: `{model.reward_name}`"
        + "".join(f"; {label[n]}: `{n}`" for n in names),
        f"- {len(prompts)} prompts x {seeds} seeds = {len(items)} images: {count['ok']} ok, "
        f"{count['flagged']} flagged, {count['failed']} failed, {count['missing']} not made",
        f"- prompts file: {job.prompt_set.report()}",
        "",
        "## Rewards per prompt",
        "",
        "Means over each prompt's images (ok and flagged) with finite values; held-out "
        "rewards score the saved PNGs.",
        "",
        "| # | prompt | images | "
        + " | ".join([f"{model.reward_name} (target)", *(f"{n} ({label[n]})" for n in names)])
        + " |",
        "|---|---|---|" + "---|" * (1 + len(names)),
    ]
    made = [rows[i.key] for i in items if rows.get(i.key, {}).get("status") in FINISHED]
    for index, prompt in enumerate(prompts):
        mine = [r for r in made if r["prompt_index"] == index]
        means = [_mean([r["reward"] for r in mine])]
        means += [_mean([r["heldout"].get(n) for r in mine]) for n in names]
        lines.append(
            f"| {index} | {_text(prompt)} | {len(mine)} | " + " | ".join(map(_cell, means)) + " |"
        )
    overall = [_mean([r["reward"] for r in made])]
    overall += [_mean([r["heldout"].get(n) for r in made]) for n in names]
    lines.append(f"| | **all** | {len(made)} | " + " | ".join(map(_cell, overall)) + " |")
    lines += ["", "## Plain against aligned", ""]
    if comparisons:
        lines += [
            f"`{GRID_FILE}`: top row plain CFG sampling (same sampler and seed), bottom row "
            "Null-TTA, one column per prompt.",
            "",
            "| image | prompt | "
            + " | ".join(f"{n} plain / aligned" for n in [model.reward_name, *names])
            + " |",
            "|---|---|" + "---|" * (1 + len(names)),
        ]
        for item, plain, row in comparisons:
            pairs = [(plain.get("reward"), row["reward"])]
            pairs += [(plain.get("heldout", {}).get(n), row["heldout"].get(n)) for n in names]
            cells = " | ".join(f"{_cell(p)} / {_cell(a)}" for p, a in pairs)
            lines.append(f"| {item.key} | {_text(item.prompt)} | {cells} |")
    else:
        lines.append("No image was made, so there is no grid.")
    failed = [(i, rows[i.key]) for i in items if rows.get(i.key, {}).get("status") == "failed"]
    lines += ["", "## Failed images", ""]
    if failed:
        lines += ["| image | prompt | seed | error |", "|---|---|---|---|"]
        for item, row in failed:
            error = _text(str(row["error"]).splitlines()[0] if row["error"] else "")
            lines.append(f"| {item.key} | {_text(item.prompt)} | {item.seed} | {error} |")
        lines += ["", "A rerun with the same command tries them again."]
    else:
        lines.append("None.")
    flagged = [(i, rows[i.key]) for i in items if rows.get(i.key, {}).get("status") == "flagged"]
    lines += ["", "## Flagged images", ""]
    if flagged:
        lines += [
            "| image | prompt | seed | skipped inner steps | flags |",
            "|---|---|---|---|---|",
        ]
        for item, row in flagged:
            lines.append(
                f"| {item.key} | {_text(item.prompt)} | {item.seed} | {row['skipped_steps']} "
                f"| {', '.join(row['flags'])} |"
            )
    else:
        lines.append("None.")
    if model.truncated:
        lines += ["", "## Truncated prompts", ""]
        lines += [f"- {index}: {_text(prompts[index])}" for index in sorted(model.truncated)]
    return "\n".join(lines) + "\n"


def finish_run(job: RunJob, model: LoadedModel) -> dict[str, int]:
    """Write ``manifest.jsonl``, the plain images, ``grid.png`` and ``summary.md``.

    Returns
    -------
    dict
        Image counts: ``images``, ``ok``, ``flagged``, ``failed``, ``missing``.

    """
    ordered = write_manifest(job.out, job.plan, read_part_rows(job.out))
    rows = {row["key"]: row for row in ordered}
    comparisons = []
    plain_images, aligned_images = [], []
    for item in _grid_items(job, rows):
        image, metadata = plain_image(job, model, item)
        with Image.open(job.out / item.file) as aligned:
            aligned_images.append(aligned.convert("RGB"))
        plain_images.append(image)
        comparisons.append((item, metadata, rows[item.key]))
    if aligned_images:
        buffer = grid_image(plain_images, aligned_images)
        atomic_write(
            job.out / GRID_FILE, png_bytes(buffer, {"layout": "top: plain, bottom: aligned"})
        )
    summary = summary_markdown(job, model, rows, comparisons)
    atomic_write(job.out / SUMMARY_FILE, summary.encode())
    total = sum(len(batch.items) for batch in job.plan)
    statuses = [row["status"] for row in ordered]
    counts = {s: statuses.count(s) for s in ("ok", "flagged", "failed")}
    return {"images": total, **counts, "missing": total - len(ordered)}
