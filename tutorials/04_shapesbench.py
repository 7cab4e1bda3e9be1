"""Tutorial 4: ShapesBench 2 - a reward of your own, over-optimisation, and two rewards at once.

The embedded model's world has a gold reward (``shapes-gold``): the true
preference, measured from the pixels and gated on the prompt. No method sees
it, so it tells whether a rise of the proxy (``shapes-preference``) is real.
"""

import torch
from _settings import QUICK, SCHEDULE

from nulltta import NullTextAligner
from nulltta.images import to_tensor
from nulltta.rewards import CallableReward, get_reward
from nulltta.shapes.gold import coverage, ramp
from nulltta.shapes.world import BACKGROUND_RGB, COLOR_RGB, parse_prompt

PROMPTS = ["a red circle on a white background", "a cyan triangle on a black background"]
SEEDS = [0] if QUICK else [0, 1]
PAIRS = [(prompt, seed) for prompt in PROMPTS for seed in SEEDS]
GOLD = get_reward("shapes-gold")
FIDELITY = get_reward("shapes-fidelity")


def fit(**settings) -> NullTextAligner:
    """Every (prompt, seed) pair in one batch (a batch equals single runs)."""
    aligner = NullTextAligner(batch_size=len(PAIRS), **settings)
    return aligner.fit([p for p, _ in PAIRS], seeds=[s for _, s in PAIRS])


def scores(aligner: NullTextAligner) -> dict[str, float]:
    """Mean target, gold and fidelity of a fit's images (each scored for its own prompt)."""
    images = torch.cat([to_tensor(image) for image in aligner.images_])
    prompts = aligner.prompts_
    with torch.no_grad():
        return {
            "target": float(get_reward("shapes-preference")(images, prompts).mean()),
            "gold": float(GOLD(images, prompts).mean()),
            "fidelity": float(FIDELITY(images, prompts).mean()),
        }


# 1. A reward of your own. Any differentiable function of (images, prompts)
# works; here the area the prompt's colour covers (the gold reward's
# segmentation, written in torch ops, so its gradient reaches phi').
def covered_area(images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    parsed = [parse_prompt(prompt) for prompt in prompts]
    shape_rgb = images.new_tensor([COLOR_RGB[colour] for _, colour, _ in parsed])
    background_rgb = images.new_tensor([BACKGROUND_RGB[back] for _, _, back in parsed])
    return ramp(coverage(images, shape_rgb, background_rgb)).mean((1, 2))


area = CallableReward(covered_area, differentiable=True)
# No optimisation and no selection is plain sampling.
plain = fit(num_candidates=1, select_initial_noise=False, **{**SCHEDULE, "n_min": 0, "n_max": 0})
bigger = fit(reward=area, **SCHEDULE)


def mean_area(aligner: NullTextAligner) -> float:
    images = torch.cat([to_tensor(image) for image in aligner.images_])
    return float(area(images, aligner.prompts_).mean())


print(f"covered area: plain {mean_area(plain):.3f}, aligned {mean_area(bigger):.3f}")

# 2. The over-optimisation curve: target and gold against the budget n_max.
# Reward hacking shows as a target that rises while gold falls.
BUDGETS = [3] if QUICK else [5, 25, 50]
curve = {0: scores(plain)}
for n_max in BUDGETS:
    settings = {**SCHEDULE, "n_min": min(5, n_max), "n_max": n_max}
    curve[n_max] = scores(fit(**settings))
for n_max, row in curve.items():
    print(f"n_max {n_max:2d}: target {row['target']:.3f}  gold {row['gold']:.3f}  "
          f"fidelity {row['fidelity']:.2f}")

# 3. Two rewards at once, weighted: w * target + (1 - w) * fidelity, as the
# paper's multi-objective figure (weights by name: "name:weight,name:weight").
sweep = {}
for w in (0.5,) if QUICK else (0.25, 0.5, 0.75, 1.0):
    spec = "shapes-preference" if w == 1 else f"shapes-preference:{w},shapes-fidelity:{1 - w}"
    sweep[w] = scores(fit(reward=spec, **SCHEDULE))
    print(f"w = {w}: " + ", ".join(f"{k} {v:.3f}" for k, v in sweep[w].items()))
