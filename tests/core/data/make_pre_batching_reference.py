"""How ``pre_batching_reference.pt`` was made: run at commit c5914f9, before batching.

    git worktree add /tmp/oldtree c5914f9
    cd /tmp/oldtree && PYTHONPATH=/tmp/oldtree python \\
        /path/to/make_pre_batching_reference.py pre_batching_reference.pt

Keep ``CASES`` in step with ``REFERENCE_CASES`` in ``tests/core/test_objective.py``.
"""

import sys

import torch

from nulltta import NullTextAligner
from nulltta.testing import tiny_stable_diffusion_pipeline

torch.set_num_threads(1)
BASE = dict(num_inference_steps=6, n_min=1, n_max=3, schedule_rate=0.3, progress=False)
CASES = {
    "greedy_backprop": dict(reward="brightness", num_candidates=3, seed=3),
    "ancestral_exact_kl": dict(
        reward="brightness", num_candidates=1, kl_mode="exact", anneal_kl=False, kl_weight=0.05,
        seed=4,
    ),
    "zeroth_order": dict(reward="contrast", gradient="zeroth_order", num_candidates=2, seed=5),
    "early_stop_every2": dict(
        reward="brightness", early_stop_patience=1, optimize_every=2, seed=6
    ),
}  # fmt: skip

if __name__ == "__main__":
    pipe = tiny_stable_diffusion_pipeline(seed=0)
    out = {}
    for name, settings in CASES.items():
        aligner = NullTextAligner(pipe, profile_memory=False, **BASE, **settings)
        aligner.fit("a red circle")
        out[name] = {
            "latents": aligner.latents_.clone(),
            "phi": aligner.phi_.clone(),
            "reward": torch.tensor(aligner.reward_),
            "inner_steps": torch.tensor(aligner.history_[:, "inner_steps"]),
        }
        print(name, aligner.reward_, aligner.history_[:, "inner_steps"])
    torch.save(out, sys.argv[1])
