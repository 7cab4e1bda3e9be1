"""The null branch's semantic levers: can a semantic phi' move what gold rewards?

    python benchmarks/null_levers.py [--out benchmarks/results/null_levers] [--part PART]

The diagnostic written down before it ran (``docs/concepts/shapesbench.md``,
"Follow-up: the null branch's semantic levers"), on the main table's 48 pairs
and sampler:

- **Part A**, fixed semantic phi': plain sampling with phi =
  text_encoder(N) for negative captions N written from each pair's prompt
  (:data:`ARMS`), and the prompt-side ceiling (the prompt names a large,
  centred shape). Every image is scored against the benchmark prompt.
- **Part B**, where the optimised phi' goes: Null-TTA with the shipped
  defaults; the displacement ``phi' - phi`` at the end of sampling against
  the lever directions ``text_encoder(N) - phi`` (cosines, and the fraction
  of its squared norm in their span).
- **Part C** (version 2): phi' = phi - alpha d_L held at every step, d_L =
  text_encoder(P_L) - text_encoder(P), P_L the prompt with a lever's words.
- **Part D** (version 3): the same with the token-aligned size direction
  d_ls = text_encoder(a large P) - text_encoder(a small P).
- **Part E**: Part B's measurements for phi' on the text manifold.
- **Part F** (``f1``, ``f2``): the optimised phi' held to the span of nine
  semantic directions (``null_levers_span.py``).

Resumable by part: a finished part is its own ``rows_<part>.jsonl``, and a
part that has rows is not run again, so parts can run as separate processes;
``--report-only`` rewrites ``levers.md``, ``levers.json`` and ``levers.png``
from the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch
from levers_setup import add_run_arguments, table_world
from torch import Tensor

PLAIN = "plain"
CEILING = "ceiling: prompt names a large centred shape"
NULLTTA = "nulltta"
#: Part E: Null-TTA with the shipped defaults, phi' on the text manifold.
MANIFOLD = "nulltta on the text manifold"
#: Part A: arm -> (size word, position phrase) of the negative caption, the
#: measurement the lever should move, and the sign it predicts.
ARMS: dict[str, tuple[str | None, str | None, str, int]] = {
    "negative small": ("small", None, "size", +1),
    "negative large": ("large", None, "size", -1),
    "negative top left": (None, "in the top left", "diagonal", +1),
    "negative bottom right": (None, "in the bottom right", "diagonal", -1),
    "negative centre": (None, "in the centre", "centring", -1),
}
#: Part B: directions that break the prompt, beside the levers and the prompt itself.
BREAKING = ("next colour", "next shape")
#: Part B: the direction Part C moves phi along, toward what gold rewards.
TOWARD_GOLD = "toward gold (-d_both)"
#: Part B (version 3): toward "large" along the token-aligned direction of Part D.
TOWARD_LARGE = "toward large, token-aligned (-d_ls)"
#: Part C (version 2): lever -> the words that make P_L from the prompt P, and the alphas.
ATTRIBUTES: dict[str, tuple[str | None, str | None]] = {
    "size": ("large", None),
    "position": (None, "in the centre"),
    "both": ("large", "in the centre"),
}
ALPHAS = (0.5, 1.0, 2.0)
PRIMARY = "both, alpha 1"
#: Part D (version 3): d_ls = text_encoder(a large P) - text_encoder(a small P).
ALIGNED = "aligned size"
ALIGNED_ALPHAS = (0.25, 0.5, 1.0, 2.0)
PART_C_PLAIN = "part C path, alpha 0"
PARTS = ("a", "b", "c", "norms", "d", "e", "f1", "f2")
NORMS = "direction norms"
MEASURES = (
    "target",
    "shapes-gold",
    "fidelity",
    "gate",
    "size",
    "size_term",
    "diagonal",
    "centring",
)
#: The main table's rows, which the plain and Null-TTA arms must reproduce.
TABLE = Path(__file__).resolve().parent / "results" / "shapesbench2" / "rows.jsonl"


def captions(prompt: str) -> dict[str, str]:
    """Every caption the diagnostic builds from ``prompt``: the negatives and the breakers."""
    from nulltta.shapes.world import COLORS, SHAPES, make_caption, parse_prompt

    shape, color, background = parse_prompt(prompt)
    out = {
        arm: make_caption(shape, color, background, size, position)
        for arm, (size, position, _, _) in ARMS.items()
    }
    out[CEILING] = make_caption(shape, color, background, "large", "in the centre")
    out["next colour"] = make_caption(shape, _next(COLORS, color), background)
    out["next shape"] = make_caption(_next(SHAPES, shape), color, background)
    return out


def _next(names: tuple[str, ...], name: str) -> str:
    return names[(names.index(name) + 1) % len(names)]


def span_fraction(delta: Tensor, directions: Tensor) -> float:
    """``||P delta||^2 / ||delta||^2``, P the projection on the rows of ``directions`` (lstsq)."""
    basis = directions.double().T  # (D, k)
    target = delta.double().reshape(-1, 1)
    coefficients = torch.linalg.lstsq(basis, target).solution
    projected = basis @ coefficients
    return float(projected.square().sum() / target.square().sum())


def cosine(a: Tensor, b: Tensor) -> float:
    """``<a, b> / (||a|| ||b||)`` of the flattened tensors."""
    a, b = a.double().flatten(), b.double().flatten()
    return float(a @ b / (a.norm() * b.norm()))


def geometry_rows(images: Tensor, prompts: list[str]) -> list[dict[str, float]]:
    """Per image: gold's gate and terms, the measured size, and ``diagonal = (cx + cy) / 2``."""
    from tune_defaults import gold_terms

    from nulltta.shapes.gold import measure

    with torch.no_grad():
        geometry = measure(images, prompts)
    return [
        {**terms, "size": float(s), "diagonal": float((x + y) / 2)}
        for terms, s, x, y in zip(
            gold_terms(images, prompts), geometry.size, geometry.cx, geometry.cy, strict=True
        )
    ]


def run_part_a(pipe, pairs, scorers) -> list[dict]:
    """Plain sampling for every arm of Part A, one fit of every seed per prompt."""

    rows = []
    for arm in (PLAIN, *ARMS, CEILING):
        for prompt in dict.fromkeys(p for p, _ in pairs):
            seeds = [s for p, s in pairs if p == prompt]
            text = captions(prompt)
            sampled = text[CEILING] if arm == CEILING else prompt
            negative = text[arm] if arm in ARMS else None
            aligner = plain_fit(pipe, [sampled] * len(seeds), seeds, negative_prompt=negative)
            rows += _score_rows(arm, aligner, [prompt] * len(seeds), seeds, scorers)
    return rows


def run_part_b(
    pipe, pairs, scorers, batch_size: int, arm: str = NULLTTA, **settings: object
) -> list[dict]:
    """Null-TTA with the shipped defaults; its displacement against the lever directions.

    ``settings`` go to the aligner: Part E runs phi' on the text manifold.
    """
    from nulltta import NullTextAligner
    from nulltta.adapters import make_adapter

    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    aligner = NullTextAligner(pipe, "shapes-preference", **settings, **_sampler(batch_size))
    aligner.fit(prompts, seeds=seeds)
    rows = _score_rows(arm, aligner, prompts, seeds, scorers)
    adapter = make_adapter(pipe)
    with torch.no_grad():
        for row, phis in zip(rows, aligner.phis_, strict=True):
            cond, null = adapter.encode_prompt(row["prompt"])
            phi = adapter.pack_null(null)[0].cpu()
            directions = {"own prompt": adapter.pack_null(cond)[0].cpu() - phi}
            for name, caption in captions(row["prompt"]).items():
                if name in ARMS or name in BREAKING:
                    encoded = adapter.pack_null(adapter.encode_prompt(caption)[0])[0].cpu()
                    directions[name] = encoded - phi
            levers = attribute_directions(adapter, row["prompt"])
            directions[TOWARD_GOLD] = -levers["both"][0].cpu()
            directions[TOWARD_LARGE] = -levers[ALIGNED][0].cpu()
            delta = phis[-1][0].cpu() - phi
            row["cosine"] = {name: cosine(delta, d) for name, d in directions.items()}
            # The span of the eight directions of version 1's design (not the later two).
            spanning = [
                d.flatten()
                for name, d in directions.items()
                if name not in (TOWARD_GOLD, TOWARD_LARGE)
            ]
            row["span_fraction"] = span_fraction(delta.flatten(), torch.stack(spanning))
            row["displacement"] = float(delta.norm())
            row["numbers"] = delta.numel()
            row["span_directions"] = len(spanning)
    return rows


def attribute_directions(adapter, prompt: str) -> dict[str, Tensor]:
    """``d_L = text_encoder(P_L) - text_encoder(P)`` for every lever L, packed ``(1, ...)``.

    And :data:`ALIGNED`, ``d_ls = text_encoder(a large P) - text_encoder(a small P)``:
    one word changed at one position, every other token where it was.
    """
    from nulltta.shapes.world import make_caption, parse_prompt

    shape, color, background = parse_prompt(prompt)

    def encoded(text: str) -> Tensor:
        return adapter.pack_null(adapter.encode_prompt(text)[0])

    with torch.no_grad():
        base = encoded(prompt)
        directions = {
            lever: encoded(make_caption(shape, color, background, size, position)) - base
            for lever, (size, position) in ATTRIBUTES.items()
        }
        directions[ALIGNED] = encoded(make_caption(shape, color, background, "large")) - encoded(
            make_caption(shape, color, background, "small")
        )
        return directions


def part_c_arms() -> dict[str, tuple[str, float]]:
    """Arm label -> (lever, alpha); the first arm is the plain check at alpha 0."""
    arms = {PART_C_PLAIN: ("both", 0.0)}
    for lever in ATTRIBUTES:
        for alpha in ALPHAS:
            arms[f"{lever}, alpha {alpha:g}"] = (lever, alpha)
    return arms


def part_d_arms() -> dict[str, tuple[str, float]]:
    """Arm label -> (lever, alpha) of Part D: the token-aligned size direction."""
    return {f"{ALIGNED}, alpha {alpha:g}": (ALIGNED, alpha) for alpha in ALIGNED_ALPHAS}


def run_held_directions(pipe, pairs, scorers, arms: dict[str, tuple[str, float]]) -> list[dict]:
    """Plain sampling with phi' = phi - alpha d_L held at every step (Parts C and D)."""
    from nulltta.adapters import make_adapter
    from nulltta.callbacks import FixedNullTrajectory

    adapter = make_adapter(pipe)
    phi = adapter.pack_null(adapter.encode_prompt("")[1])
    rows = []
    for arm, (lever, alpha) in arms.items():
        for prompt in dict.fromkeys(p for p, _ in pairs):
            seeds = [s for p, s in pairs if p == prompt]
            moved = phi - alpha * attribute_directions(adapter, prompt)[lever]
            held = FixedNullTrajectory(moved.expand(20, *moved.shape).clone())
            aligner = plain_fit(pipe, [prompt] * len(seeds), seeds, callbacks=[held])
            rows += _score_rows(arm, aligner, [prompt] * len(seeds), seeds, scorers)
    return rows


def direction_norms(pipe, prompts: list[str]) -> list[dict]:
    """Per prompt: the norms of Parts C and D's d_L beside the prompt's and a colour change's.

    Also each direction's norm per token position: inserting a word moves every later
    token, so d_L holds the prompt's own words at shifted positions.
    """
    from nulltta.adapters import make_adapter

    adapter = make_adapter(pipe)
    with torch.no_grad():
        phi = adapter.pack_null(adapter.encode_prompt("")[1])[0]
        rows = []
        for prompt in dict.fromkeys(prompts):
            own = adapter.pack_null(adapter.encode_prompt(prompt)[0])[0]
            colour = adapter.pack_null(adapter.encode_prompt(captions(prompt)["next colour"])[0])
            directions = {
                **{
                    f"d_{lever}": d[0] for lever, d in attribute_directions(adapter, prompt).items()
                },
                "prompt minus phi": own - phi,
                "next colour minus prompt": colour[0] - own,
            }
            rows.append({
                "arm": NORMS, "prompt": prompt,
                "norm": {name: float(d.norm()) for name, d in directions.items()},
                "per_token": {name: d.norm(dim=-1).tolist() for name, d in directions.items()},
            })  # fmt: skip
    return rows


def plain_fit(pipe, prompts: list[str], seeds: list[int], **options: object):
    """Plain sampling (no inner steps, no selection) at the table's sampler, fitted."""
    from nulltta import NullTextAligner

    aligner = NullTextAligner(
        pipe,
        "shapes-preference",
        n_min=0,
        n_max=0,
        num_candidates=1,
        select_initial_noise=False,
        **options,
        **_sampler(len(prompts)),
    )
    return aligner.fit(prompts, seeds=seeds)


def _sampler(batch_size: int) -> dict:
    from nulltta.bench.base import compressed_rate

    return {
        "num_inference_steps": 20,
        "schedule_rate": compressed_rate(20),
        "batch_size": batch_size,
        "autocast_dtype": None,
        "vae_autocast_dtype": None,
    }


def _score_rows(arm: str, aligner, prompts: list[str], seeds: list[int], scorers) -> list[dict]:
    from nulltta.bench.scoring import score_images
    from nulltta.images import to_tensor

    images = torch.cat([to_tensor(image) for image in aligner.images_])
    scores = score_images(images, prompts, scorers)
    geometry = geometry_rows(images, prompts)
    return [
        {"arm": arm, "prompt": p, "seed": s, **score, **measured}
        for p, s, score, measured in zip(prompts, seeds, scores, geometry, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the parts not yet in ``rows.jsonl``, then write the report."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, "benchmarks/results/null_levers")
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all")
    args = parser.parse_args(argv)
    from nulltta.jsonl import append_row, read_rows

    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        from null_levers_span import run_part_f

        pipe, scorers, pairs = table_world(args.prompts, args.threads)
        runs = {
            "a": lambda: run_part_a(pipe, pairs, scorers),
            "b": lambda: run_part_b(pipe, pairs, scorers, args.batch_size),
            "c": lambda: run_held_directions(pipe, pairs, scorers, part_c_arms()),
            "d": lambda: run_held_directions(pipe, pairs, scorers, part_d_arms()),
            "e": lambda: run_part_b(
                pipe,
                pairs,
                scorers,
                args.batch_size,
                MANIFOLD,
                null_parameterisation="text_manifold",
            ),  # fmt: skip
            "norms": lambda: direction_norms(pipe, [p for p, _ in pairs]),
            **{
                part: partial(run_part_f, pipe, pairs, scorers, args.batch_size, part)
                for part in ("f1", "f2")
            },
        }
        for part in PARTS if args.part == "all" else (args.part,):
            path = args.out / f"rows_{part}.jsonl"
            if read_rows(path):
                continue
            started = time.perf_counter()
            for row in runs[part]():
                append_row(path, row)
            print(f"part {part}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = [r for part in PARTS for r in read_rows(args.out / f"rows_{part}.jsonl")]
    if not rows:
        print("nothing has run yet: no report")
        return 0
    from null_levers_report import markdown, plot, summarise

    summary = summarise(rows, read_rows(TABLE))
    (args.out / "levers.json").write_text(json.dumps(summary, indent=1))
    (args.out / "levers.md").write_text(markdown(summary))
    plot(summary, args.out / "levers.png")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
