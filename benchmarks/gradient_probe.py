"""Part H of the levers follow-up: what each reward asks of each step's Tweedie estimate.

    python benchmarks/gradient_probe.py               # run (20 s on two threads)
    python benchmarks/gradient_probe.py --lookahead 4 # version 2 (also --lookahead 2)
    python benchmarks/gradient_probe.py --report-only

Written before it ran (``docs/concepts/shapesbench.md``, "Part H"). Plain
sampling on the main table's 48 pairs records, at every step, the decoded
Tweedie estimate x̂0 with phi' = phi (what Null-TTA's reward sees before phi'
moves), and the final image. For each image and reward, two directional
derivatives along image moves that gold's terms value:

- ``D_c``: along a translation of the content toward the image centre
  (:func:`toward_centre`);
- ``D_s``: along a growth of the content about its centre (:func:`grow`);

each the reward's pixel gradient dotted with the move's tangent (:func:`tangent`).

The rewards are the target ``shapes-preference``, the held-out proxy and
Part G's ungated oracle (gold's two terms). :func:`probe_reading` reads the
target by the rule fixed in the design; the summaries, readings and reports
are in ``gradient_probe_report.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from gradient_probe_report import (
    FINAL,
    lookahead_markdown,
    lookahead_reading,
    markdown,
    summarise,
)
from levers_setup import add_run_arguments, table_world
from torch import Tensor

from nulltta import NullTextAligner
from nulltta.adapters import cat_embeddings
from nulltta.equations import cfg_combine
from nulltta.module import NullTextModule

#: A segmented centre nearer the image centre than this has no direction toward it.
CENTRED = 0.03
#: Version 2: the look-ahead estimates' sub-steps.
LOOKAHEAD = (2, 4)


def _resample(images: Tensor, source: Tensor) -> Tensor:
    """Bilinear samples of ``images`` at ``source`` points (``(B, H, W, 2)``, image units).

    Image units run from 0 to 1 across the side (x right, y down); border padding.
    """
    return F.grid_sample(
        images, source * 2 - 1, mode="bilinear", padding_mode="border", align_corners=False
    )


def _pixel_centres(images: Tensor) -> Tensor:
    """``(1, H, W, 2)`` pixel-centre coordinates ``(x, y)`` in image units."""
    _, _, height, width = images.shape
    ys = (torch.arange(height, dtype=images.dtype, device=images.device) + 0.5) / height
    xs = (torch.arange(width, dtype=images.dtype, device=images.device) + 0.5) / width
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], -1)[None]


def toward_centre(images: Tensor, centre: Tensor, epsilon: Tensor) -> Tensor:
    """The content translated by ``epsilon`` along the unit vector from ``centre`` to (0.5, 0.5).

    ``out(p) = in(p - epsilon u)``, ``u = (0.5 - centre) / |0.5 - centre|``.

    Parameters
    ----------
    images : Tensor
        ``(B, C, H, W)``.
    centre : Tensor
        ``(B, 2)`` segmented centres ``(cx, cy)`` in image units; none may be (0.5, 0.5).
    epsilon : Tensor
        ``(B,)`` shift, fraction of the side.
    """
    direction = 0.5 - centre
    unit = direction / direction.norm(dim=1, keepdim=True)
    shift = (epsilon[:, None] * unit)[:, None, None, :]
    return _resample(images, _pixel_centres(images) - shift)


def grow(images: Tensor, centre: Tensor, epsilon: Tensor) -> Tensor:
    """The content scaled by ``1 + epsilon`` about ``centre``.

    ``out(p) = in(c + (p - c) / (1 + epsilon))``; arguments as :func:`toward_centre`.
    """
    c = centre[:, None, None, :]
    factor = (1 + epsilon)[:, None, None, None]
    return _resample(images, c + (_pixel_centres(images) - c) / factor)


def tangent(
    move: Callable[[Tensor, Tensor, Tensor], Tensor],
    images: Tensor,
    centre: Tensor,
    step: float = 0.5 / 32,
) -> Tensor:
    """Image-space tangent of ``move`` at epsilon = 0, by a centred difference.

    ``v = (move(+h) - move(-h)) / 2h`` with ``h`` half a pixel: bilinear
    resampling has a kink at the pixel centres, so its autograd derivative at
    epsilon = 0 would be one-sided. ``move`` is :func:`toward_centre` or
    :func:`grow`; the result is like ``images``.
    """
    h = torch.full((len(images),), step, dtype=images.dtype)
    return (move(images, centre, h) - move(images, centre, -h)) / (2 * step)


def directional_derivatives(
    images: Tensor, prompts: list[str], score: Callable[[Tensor, list[str]], Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """``(D_c, D_s, distance)``: the reward's gradient along both moves, per image.

    ``D = <grad_x score(x), v>`` with ``v`` from :func:`tangent`: the first-order
    change of the score that the gradient predicts along the move. ``distance``
    is the segmented centre's distance from the image centre; where it is below
    :data:`CENTRED`, ``D_c`` is NaN (no direction).
    """
    from nulltta.shapes.gold import measure

    images = images.detach().float()
    with torch.no_grad():
        geometry = measure(images, prompts)
    centre = torch.stack([geometry.cx, geometry.cy], 1)
    distance = (centre - 0.5).norm(dim=1)
    safe = torch.where(distance[:, None] >= CENTRED, centre, centre.new_tensor([0.0, 0.0]))
    v_c, v_s = tangent(toward_centre, images, safe), tangent(grow, images, centre)
    x = images.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(score(x, prompts).sum(), x)
    d_c, d_s = ((gradient * v).flatten(1).sum(1) for v in (v_c, v_s))
    d_c = torch.where(distance >= CENTRED, d_c, torch.full_like(d_c, float("nan")))
    return d_c, d_s, distance


def lookahead_timesteps(timestep: int, sub_steps: int) -> list[int]:
    """``sub_steps`` timesteps from ``timestep`` toward 0, ``round(t (k - j) / k)``, j < k."""
    return [round(timestep * (sub_steps - j) / sub_steps) for j in range(sub_steps)]


def lookahead_x0(
    latents: Tensor,
    timestep: int,
    sub_steps: int,
    predict: Callable[[Tensor, int], Tensor],
    alphas_cumprod: Tensor,
) -> Tensor:
    """Deterministic DDIM (eta = 0) over ``sub_steps`` from ``timestep``; the last Tweedie x0.

    ``x0_j = (x_j - n_j eps_j) / s_j`` and ``x_{j+1} = s_{j+1} x0_j + n_{j+1} eps_j``,
    with ``s = sqrt(abar)``, ``n = sqrt(1 - abar)`` at the timesteps of
    :func:`lookahead_timesteps` and ``eps_j = predict(x_j, t_j)`` (the CFG
    noise). One sub-step is the one-step Tweedie estimate.
    """
    times = lookahead_timesteps(timestep, sub_steps)
    x = latents
    for j, t in enumerate(times):
        abar = float(alphas_cumprod[t])
        eps = predict(x, t)
        x0 = (x - (1 - abar) ** 0.5 * eps) / abar**0.5
        if j + 1 < len(times):
            abar_next = float(alphas_cumprod[times[j + 1]])
            x = abar_next**0.5 * x0 + (1 - abar_next) ** 0.5 * eps
    return x0


class ProbeModule(NullTextModule):
    """The method's module, recording each step's decoded estimate with the current phi'.

    The estimate is :func:`lookahead_x0` over :attr:`sub_steps` (one: the
    one-step Tweedie x̂0); :func:`probe_aligner` sets it.
    """

    sub_steps = 1

    def _cfg_at(self, latents: Tensor, timestep: int) -> Tensor:
        """CFG noise with phi' at any ``timestep`` (the look-ahead's are off the schedule)."""
        null = self.null_embeddings(self.phi_prime().detach())
        both = self.adapter.predict_noise(
            torch.cat([latents, latents]), timestep, cat_embeddings([null, self.trajectory.cond])
        )
        return cfg_combine(*both.chunk(2), self.config.guidance_scale)

    def training_step(self, batch, batch_idx: int = 0):
        step_index = int(batch)
        traj = self.trajectory
        if step_index == 0:
            self.estimates: list[Tensor] = []
        with torch.no_grad():
            x0 = lookahead_x0(
                traj.latents, int(traj.timesteps[step_index]), self.sub_steps, self._cfg_at,
                self.adapter.scheduler.alphas_cumprod.to(torch.float64),
            )  # fmt: skip
            self.estimates.append(self.adapter.decode(x0).cpu())
        return super().training_step(batch, batch_idx)


def probe_aligner(sub_steps: int) -> type[NullTextAligner]:
    """A ``NullTextAligner`` subclass whose module records estimates over ``sub_steps``."""
    module = type(f"ProbeModule{sub_steps}", (ProbeModule,), {"sub_steps": sub_steps})
    return type(f"ProbeAligner{sub_steps}", (NullTextAligner,), {"module_class": module})


def plain_estimates(
    pipe, prompts: list[str], seeds: list[int], sub_steps: int = 1
) -> tuple[list[Tensor], Tensor]:
    """Plain sampling at the table's sampler; each step's estimate and the final images.

    The settings are those of the levers follow-up's plain arm (``null_levers.plain_fit``).
    """
    from null_levers import _sampler

    from nulltta.images import to_tensor

    aligner = probe_aligner(sub_steps)(
        pipe, "shapes-preference", n_min=0, n_max=0, num_candidates=1,
        select_initial_noise=False, **_sampler(len(prompts)),
    ).fit(prompts, seeds=seeds)  # fmt: skip
    final = torch.cat([to_tensor(image) for image in aligner.images_])
    return aligner.module_.estimates, final


def reward_functions() -> dict[str, Callable[[Tensor, list[str]], Tensor]]:
    """The three rewards as differentiable ``score(images, prompts)``."""
    from null_oracle import oracle_score

    from nulltta.rewards import get_reward

    target, heldout = get_reward("shapes-preference"), get_reward("shapes-preference-heldout")
    return {"target": target.score, "heldout": heldout.score, "oracle": oracle_score}


def probe_rows(pipe, pairs: list[tuple[str, int]], sub_steps: int = 1) -> list[dict]:
    """One row per (pair, step or final, reward): ``D_c``, ``D_s`` and the centre's distances.

    ``sub_steps`` above one probes the look-ahead estimates (Part H, version 2).
    """
    from nulltta.shapes.gold import gold_score, measure

    prompts, seeds = [p for p, _ in pairs], [s for _, s in pairs]
    estimates, final = plain_estimates(pipe, prompts, seeds, sub_steps)
    with torch.no_grad():
        end = measure(final, prompts)
        final_gold = gold_score(final, prompts)
    end_centre = torch.stack([end.cx, end.cy], 1)
    rewards = reward_functions()
    rows = []
    for step, images in [*enumerate(estimates), (FINAL, final)]:
        with torch.no_grad():
            here = measure(images, prompts)
        to_final = (torch.stack([here.cx, here.cy], 1) - end_centre).norm(dim=1)
        for name, score in rewards.items():
            d_c, d_s, distance = directional_derivatives(images, prompts, score)
            for i, (prompt, seed) in enumerate(pairs):
                rows.append({
                    "prompt": prompt, "seed": seed, "step": step, "reward": name,
                    "d_c": None if torch.isnan(d_c[i]) else float(d_c[i]),
                    "d_s": float(d_s[i]), "distance": float(distance[i]),
                    "to_final": float(to_final[i]), "size": float(here.size[i]),
                    **({"gold": float(final_gold[i])} if step == FINAL else {}),
                })  # fmt: skip
    return rows


def _rows_file(folder, sub_steps: int):
    return folder / ("rows.jsonl" if sub_steps == 1 else f"rows_lookahead{sub_steps}.jsonl")


def main(argv: list[str] | None = None) -> int:
    """Run the probe unless its rows exist, then write the reports."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_arguments(parser, "benchmarks/results/gradient_probe")
    parser.add_argument("--lookahead", type=int, default=1, help="sub-steps of the estimate")
    args = parser.parse_args(argv)
    from nulltta.jsonl import append_row, read_rows

    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = _rows_file(args.out, args.lookahead)
    if not args.report_only and not read_rows(rows_file):
        pipe, _, pairs = table_world(args.prompts, args.threads)
        started = time.perf_counter()
        for row in probe_rows(pipe, pairs, args.lookahead):
            append_row(rows_file, row)
        print(f"probe, k = {args.lookahead}: {time.perf_counter() - started:.0f} s", flush=True)
    rows = read_rows(_rows_file(args.out, 1))
    if not rows:
        print("nothing has run yet: no report")
        return 0
    summary = summarise(rows)
    (args.out / "probe.json").write_text(json.dumps(summary, indent=1))
    (args.out / "probe.md").write_text(markdown(summary))
    print(markdown(summary))
    ahead_rows = {k: read_rows(_rows_file(args.out, k)) for k in LOOKAHEAD}
    ahead = {k: summarise(rows) for k, rows in ahead_rows.items() if rows}
    if ahead:
        reading = lookahead_reading(summary, ahead)
        record = {"sub_steps": {str(k): v for k, v in ahead.items()}, "reading": reading}
        (args.out / "lookahead.json").write_text(json.dumps(record, indent=1))
        (args.out / "lookahead.md").write_text(lookahead_markdown(summary, ahead, reading))
        print(lookahead_markdown(summary, ahead, reading))
    return 0


if __name__ == "__main__":
    sys.exit(main())
