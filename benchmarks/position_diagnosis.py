"""What decides where the embedded model puts the shape: the position phrase or the noise?

    python benchmarks/position_diagnosis.py [--model DIR] [--out DIR]

Plain CFG sampling (the method's sampler: DDIM eta = 1, CFG 5) of every base
prompt in a fixed set under each of the five position phrases and under no
phrase, with the same seeds across phrases. The gold reward's segmentation
measures each shape's centre. Two numbers answer the question:

- ``seed_share``: the fraction of the centre's variance (over phrases and
  seeds, within a prompt) explained by the seed, i.e. by the initial noise.
- ``phrase_share``: the fraction explained by the phrase.

A model whose text decides position has ``phrase_share`` near 1; one whose
noise decides it has ``seed_share`` near 1. ``obeyed`` is the obedience rate
per phrase (:mod:`nulltta.shapes.obedience`). The same measurement on the
first step's x0 prediction (``first_step``) says whether the phrase already
fails at the highest noise level, where the layout is decided.
``text_distance`` says whether the text encoder separates the phrases at
all, per axis (:func:`text_distances`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline

from nulltta.equations import cfg_combine, to_epsilon, tweedie_x0
from nulltta.shapes.components import build_text_encoder
from nulltta.shapes.evaluate import sample
from nulltta.shapes.gold import measure
from nulltta.shapes.model import load_embedded_pipeline, load_world_model
from nulltta.shapes.obedience import obeys_position
from nulltta.shapes.prompts import POSITION_PHRASES, all_prompts, make_caption, parse_prompt

PHRASES: tuple[str | None, ...] = (*POSITION_PHRASES, None)


def variance_shares(centres: np.ndarray) -> dict[str, float]:
    """Shares of the centre's variance explained by seed and by phrase.

    ``centres`` is ``(prompts, phrases, seeds, 2)``. Within each prompt, the
    total sum of squares about the prompt's mean is split into the seed
    means' and the phrase means' sums of squares (a two-way layout with one
    image per cell; the remainder is their interaction).
    """
    mean = centres.mean((1, 2), keepdims=True)
    total = ((centres - mean) ** 2).sum()
    by_seed = centres.mean(1, keepdims=True)
    by_phrase = centres.mean(2, keepdims=True)
    seed_ss = ((by_seed - mean) ** 2).sum() * centres.shape[1]
    phrase_ss = ((by_phrase - mean) ** 2).sum() * centres.shape[2]
    return {"seed_share": float(seed_ss / total), "phrase_share": float(phrase_ss / total)}


@torch.no_grad()
def first_step_x0(
    pipe: StableDiffusionPipeline, captions: list[str], seeds: list[int], steps: int, cfg: float
):
    """The guided x0 prediction at the first sampling step, decoded to images."""
    pipe.scheduler.set_timesteps(steps)
    t = pipe.scheduler.timesteps[0]
    latents = torch.stack(
        [torch.randn((4, 8, 8), generator=torch.Generator().manual_seed(s)) for s in seeds]
    )
    cond, uncond = pipe.encode_prompt(captions, "cpu", 1, True, [""] * len(captions))
    pred = pipe.unet(
        torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([uncond, cond])
    ).sample
    uncond_pred, cond_pred = pred.chunk(2)
    # CFG commutes with the conversion to eps (it is affine), so guide, then convert.
    abar = float(pipe.scheduler.alphas_cumprod[t])
    signal, noise = abar**0.5, (1 - abar) ** 0.5
    guided = cfg_combine(uncond_pred, cond_pred, cfg)
    eps = to_epsilon(guided, latents, signal, noise, pipe.scheduler.config.prediction_type)
    x0 = tweedie_x0(latents, eps, signal, noise)
    images = pipe.vae.decode(x0 / pipe.vae.config.scaling_factor).sample
    return ((images + 1) / 2).clamp(0, 1)


@torch.no_grad()
def text_distances(pipe: StableDiffusionPipeline, prompts: list[str]) -> dict[str, float]:
    """How far apart the text encoder puts two position phrases, per axis.

    For each pair of phrases that differ in one axis only (``top left`` vs
    ``top right``: horizontal; ``top left`` vs ``bottom left``: vertical),
    the Frobenius norm of the difference of the encoder's hidden states over
    all 16 tokens, averaged over ``prompts``. The UNet cannot place two
    captions differently if the encoder gives them the same states.
    """
    pairs = {
        "horizontal": [
            ("in the top left", "in the top right"),
            ("in the bottom left", "in the bottom right"),
        ],
        "vertical": [
            ("in the top left", "in the bottom left"),
            ("in the top right", "in the bottom right"),
        ],
    }

    def states(caption: str) -> torch.Tensor:
        ids = pipe.tokenizer(
            caption,
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return pipe.text_encoder(ids)[0][0]

    out = {}
    for axis, phrase_pairs in pairs.items():
        norms = [
            float(
                (
                    states(make_caption(*parse_prompt(p), position=a))
                    - states(make_caption(*parse_prompt(p), position=b))
                ).norm()
            )
            for p in prompts
            for a, b in phrase_pairs
        ]
        out[axis] = float(np.mean(norms))
    return out


def centres_of(images: torch.Tensor, captions: list[str], shape: tuple[int, ...]) -> np.ndarray:
    m = measure(images, captions)
    return np.stack([m.cx.numpy(), m.cy.numpy()], -1).reshape(*shape, 2)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="pipeline folder (default: embedded)"
    )
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cfg", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--text-only", action="store_true", help="only the text encoder's phrase distances"
    )
    parser.add_argument(
        "--fresh-text-encoder",
        type=int,
        default=None,
        metavar="SEED",
        help="measure an untrained text encoder of the same config (torch seed SEED)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    pipe = load_embedded_pipeline() if args.model is None else load_world_model(args.model)
    base = all_prompts()[:: max(1, len(all_prompts()) // args.prompts)][: args.prompts]
    result: dict = {
        "model": str(args.model or "embedded"),
        "prompts": base,
        "seeds": args.seeds,
        "steps": args.steps,
        "cfg": args.cfg,
    }
    if args.fresh_text_encoder is not None:
        torch.manual_seed(args.fresh_text_encoder)
        pipe.text_encoder = build_text_encoder(pipe.tokenizer)
        result["text_encoder"] = f"untrained, torch seed {args.fresh_text_encoder}"
    result["text_distance"] = text_distances(pipe, base)
    if not args.text_only:
        result.update(diagnose_centres(pipe, base, args.seeds, args.steps, args.cfg))
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


def diagnose_centres(pipe, base: list[str], n_seeds: int, steps: int, cfg: float) -> dict:
    """Variance shares, obedience and mean centres, for the final images and the first step.

    Every prompt of ``base`` is sampled under each phrase of :data:`PHRASES`
    with the seeds ``20000 .. 20000 + n_seeds - 1``, the same for every phrase.
    """
    captions, seeds = [], []
    for prompt in base:
        for phrase in PHRASES:
            for seed in range(n_seeds):
                captions.append(make_caption(*parse_prompt(prompt), position=phrase))
                seeds.append(20_000 + seed)
    shape = (len(base), len(PHRASES), n_seeds)
    images = sample(pipe, captions, seeds, cfg, steps)
    first = first_step_x0(pipe, captions, seeds, steps, cfg)
    result = {}
    for name, imgs in (("final", images), ("first_step", first)):
        centres = centres_of(imgs, captions, shape)
        obeyed = {
            phrase: float(
                np.mean(
                    [
                        obeys_position(phrase, *centres[p, j, s])
                        for p in range(shape[0])
                        for s in range(shape[2])
                    ]
                )
            )
            for j, phrase in enumerate(PHRASES)
            if phrase is not None
        }
        mean_centre = {
            str(phrase): [round(float(v), 3) for v in centres[:, j].reshape(-1, 2).mean(0)]
            for j, phrase in enumerate(PHRASES)
        }
        result[name] = {
            **variance_shares(centres),
            "obeyed": obeyed,
            "mean_centre": mean_centre,
            "obeyed_mean": float(np.mean(list(obeyed.values()))),
        }
    return result


if __name__ == "__main__":
    main()
