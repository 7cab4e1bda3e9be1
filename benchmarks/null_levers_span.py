"""Part F of the levers follow-up: the optimised phi' held to the semantic directions.

    python benchmarks/null_levers.py --part f1   # then --part f2

Written before it ran (``docs/concepts/shapesbench.md``, "Part F"): phi' =
phi + U c, where U is an orthonormal basis of the pair prompt's nine
semantic directions (Part A's five negative captions, Parts C and D's
attribute directions; rank 7 by construction, so U is their SVD basis) and
c, k = 7 numbers per trajectory starting at 0, is the only parameter.
Null-TTA runs with the shipped defaults otherwise, through an estimator
subclass whose module sets this parameterisation
(:attr:`~nulltta.estimator_setup.EstimatorSetup.module_class`).

- **F1** (primary): lr 0.03 x sqrt(2048 / k), the free phi''s first Adam
  step length;
- **F2**: the shipped lr 0.03 on c.

:func:`part_f_summary` reads both by the rule fixed in the design and
:func:`part_f_lines` writes their section of ``levers.md``.
"""

from __future__ import annotations

import math

import torch
from null_levers import (
    ALIGNED,
    ARMS,
    NULLTTA,
    PLAIN,
    _sampler,
    _score_rows,
    attribute_directions,
    captions,
    cosine,
    span_fraction,
)
from torch import Tensor

from nulltta import NullTextAligner
from nulltta.module import NullTextModule
from nulltta.parameterisation import FreeNull

#: The shipped step size, and the number of phi's numbers on the embedded model.
SHIPPED_LR = 0.03
PHI_NUMBERS = 16 * 128
#: A singular value below this fraction of the largest counts as dependent.
RANK_TOLERANCE = 1e-6
F1 = "span of the semantic directions, matched lr"
F2 = "span of the semantic directions, lr 0.03"
#: Part -> (arm, whether its lr is matched to the free phi''s first step).
SPAN_PARTS: dict[str, tuple[str, bool]] = {"f1": (F1, True), "f2": (F2, False)}


def span_learning_rate(matched: bool, rank: int) -> float:
    """``0.03 sqrt(2048 / k)`` when matched (the free phi''s first Adam step length), else 0.03.

    Adam's first step moves every coordinate by about lr: the free phi' (2,048
    numbers) by about ``0.03 sqrt(2048)`` and c (k numbers) by ``lr sqrt(k)``.
    """
    return SHIPPED_LR * math.sqrt(PHI_NUMBERS / rank) if matched else SHIPPED_LR


def semantic_directions(adapter, prompt: str) -> dict[str, Tensor]:
    """The nine directions of the design for ``prompt``, each of phi's packed shape.

    Part A's ``text_encoder(N) - phi`` for its five negative captions N, and
    Parts C and D's ``d_size``, ``d_position``, ``d_both`` and ``d_ls``.
    """
    with torch.no_grad():
        phi = adapter.pack_null(adapter.encode_prompt("")[1])[0]
        texts = captions(prompt)
        directions = {
            arm: adapter.pack_null(adapter.encode_prompt(texts[arm])[0])[0] - phi for arm in ARMS
        }
        for name, d in attribute_directions(adapter, prompt).items():
            directions["d_ls" if name == ALIGNED else f"d_{name}"] = d[0]
    return directions


def orthonormal_basis(directions: Tensor) -> Tensor:
    """Orthonormal rows spanning what the rows of ``directions`` span (SVD in float64).

    The left singular vectors whose singular value is above
    :data:`RANK_TOLERANCE` of the largest: as many as the directions' rank.
    """
    flat = directions.double().flatten(1)
    left, singular, _ = torch.linalg.svd(flat.T, full_matrices=False)
    independent = singular > RANK_TOLERANCE * singular.max()
    return left.T[independent].reshape(-1, *directions.shape[1:]).to(directions.dtype)


class SpanNull(FreeNull):
    """phi' = phi + U c: the parameter is c, one row of k coefficients per trajectory.

    Parameters
    ----------
    adapter : PipelineAdapter
        The model family's adapter.
    negative_prompt : str or None
        The negative prompt (phi's text).
    bases : Tensor
        ``(B, k, ...)``: each trajectory's orthonormal basis U, phi's packed shape.

    """

    name = "semantic span"

    def __init__(self, adapter, negative_prompt: str | None, bases: Tensor) -> None:
        super().__init__(adapter, negative_prompt)
        self.bases = bases
        self.origin: Tensor | None = None

    def initial(self, null_packed: Tensor) -> Tensor:
        """c = 0 for every trajectory, so phi' starts at phi (``null_packed``)."""
        self.origin = null_packed
        return torch.zeros(null_packed.shape[0], self.bases.shape[1], device=null_packed.device)

    def phi(self, parameter: Tensor) -> Tensor:
        """``phi + U c``, per trajectory."""
        return self.origin + torch.einsum("bk,bk...->b...", parameter, self.bases)


class SpanModule(NullTextModule):
    """The method's module with phi' held to each prompt's semantic span (:class:`SpanNull`)."""

    def start_trajectory(self, prompts, *args, **kwargs):
        """The method's start, then c = 0 on each trajectory's basis."""
        trajectory = super().start_trajectory(prompts, *args, **kwargs)
        bases = [
            orthonormal_basis(torch.stack(list(semantic_directions(self.adapter, p).values())))
            for p in trajectory.prompts
        ]
        if len({len(basis) for basis in bases}) > 1:
            raise ValueError(
                f"the prompts' spans have ranks {[len(b) for b in bases]}; fit prompts whose "
                "spans have one rank together"
            )
        stacked = torch.stack(bases).to(trajectory.null_packed)
        self.parameterisation = SpanNull(self.adapter, kwargs.get("negative_prompt"), stacked)
        self.null_embedding.data = self.parameterisation.initial(trajectory.null_packed)
        return trajectory


class SpanAligner(NullTextAligner):
    """``NullTextAligner`` running :class:`SpanModule`."""

    module_class = SpanModule


def run_part_f(pipe, pairs, scorers, batch_size: int, part: str) -> list[dict]:
    """One arm of Part F on the pairs; per pair, where phi' ended and how it scored."""
    from nulltta.adapters import make_adapter

    arm, matched = SPAN_PARTS[part]
    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    adapter = make_adapter(pipe)
    # Once per prompt: the directions give the rank (hence the lr) and each pair's measures.
    directions = {p: semantic_directions(adapter, p) for p in dict.fromkeys(prompts)}
    stacked = {p: torch.stack(list(d.values())).cpu() for p, d in directions.items()}
    ranks = {p: len(orthonormal_basis(d)) for p, d in stacked.items()}
    learning_rate = span_learning_rate(matched, min(ranks.values()))
    aligner = SpanAligner(
        pipe, "shapes-preference", learning_rate=learning_rate, **_sampler(batch_size)
    )
    aligner.fit(prompts, seeds=seeds)
    rows = _score_rows(arm, aligner, prompts, seeds, scorers)
    with torch.no_grad():
        phi = adapter.pack_null(adapter.encode_prompt("")[1])[0].cpu()
        for row, phis in zip(rows, aligner.phis_, strict=True):
            prompt = row["prompt"]
            delta = phis[-1][0].cpu() - phi
            row["learning_rate"] = learning_rate
            row["rank"] = ranks[prompt]
            row["displacement"] = float(delta.norm())
            row["cosine toward gold"] = cosine(delta, -directions[prompt]["d_both"].cpu())
            row["span_fraction"] = span_fraction(delta.flatten(), stacked[prompt].flatten(1))
    return rows


def part_f_summary(by_arm: dict[str, dict], summary_arms: dict) -> dict:
    """Each Part F arm read by the design's rule: gold against the free phi' and plain."""
    from null_levers_report import FIDELITY_MARGIN, mean_se

    free, out = by_arm.get(NULLTTA, {}), {}
    for part, (arm, _) in SPAN_PARTS.items():
        mine = by_arm.get(arm, {})
        pairs = sorted(set(mine) & set(free))
        if not pairs or arm not in summary_arms:
            continue
        minus_free = {
            key: mean_se([mine[p][key] - free[p][key] for p in pairs])
            for key in ("shapes-gold", "target", "fidelity", "displacement")
        }
        toward = mean_se([mine[p]["cosine toward gold"] - free[p]["cosine"]["toward gold (-d_both)"]
                          for p in pairs])  # fmt: skip
        over_plain = summary_arms[arm]["shapes-gold"]["minus_plain"]
        floor = summary_arms[PLAIN]["fidelity"]["mean"] - FIDELITY_MARGIN
        kept = summary_arms[arm]["fidelity"]["mean"] >= floor
        above_free = minus_free["shapes-gold"]["mean"] > 2 * minus_free["shapes-gold"]["se"]
        above_plain = over_plain["mean"] > 2 * over_plain["se"]
        if above_free and kept:
            verdict = "supports the semantic-manifold argument on this world"
        elif not above_plain:
            verdict = "holding phi' to these semantic directions does not make Null-TTA raise gold"
        else:
            verdict = "raises gold over plain sampling, but not above the free phi' by 2 SE"
        rows = list(mine.values())
        out[part] = {
            "arm": arm,
            "primary": part == "f1",
            "learning_rate": rows[0]["learning_rate"],
            "pairs": len(pairs),
            "ranks": sorted({r["rank"] for r in rows}),
            "displacement": mean_se([r["displacement"] for r in rows]),
            "span_fraction": mean_se([r["span_fraction"] for r in rows]),
            "cosine toward gold": mean_se([r["cosine toward gold"] for r in rows]),
            "minus_free": {**minus_free, "cosine toward gold": toward},
            "fidelity_kept": kept,
            "above_free": above_free,
            "above_plain": above_plain,
            "verdict": verdict,
        }
    return out


def part_f_lines(summary: dict, arm_table) -> list[str]:
    """Part F's section of ``levers.md`` (``arm_table`` writes the arms' table)."""
    part_f = summary.get("part_f")
    if not part_f:
        return []
    from null_levers_report import _pm

    lines = [
        "",
        "## Part F: the optimised phi' held to the span of the nine semantic directions",
        "",
        *arm_table(summary, [PLAIN, NULLTTA, *(entry["arm"] for entry in part_f.values())]),
        "",
        "| arm | lr | rank | displacement | span fraction | cosine toward gold | gold minus "
        "free phi' | fidelity minus free phi' | reading |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in part_f.values():
        free = entry["minus_free"]
        role = "primary" if entry["primary"] else "secondary"
        lines.append(
            f"| {entry['arm']} ({role}) | {entry['learning_rate']:.3g} | "
            f"{', '.join(map(str, entry['ranks']))} | {_pm(entry['displacement'])} | "
            f"{_pm(entry['span_fraction'])} | {_pm(entry['cosine toward gold'], signed=True)} | "
            f"{_pm(free['shapes-gold'], signed=True)} | {_pm(free['fidelity'], signed=True)} | "
            f"{entry['verdict']} |"
        )
    return lines
