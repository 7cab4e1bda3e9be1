"""Tutorial 1: align one image on the embedded model and compare it with plain sampling."""

from _settings import SCHEDULE

from nulltta import NullTextAligner

PROMPT = "a red circle on a white background"

# 1. The estimator stores its settings; nothing is loaded yet.
aligner = NullTextAligner(reward="shapes-preference", seed=0, **SCHEDULE)
print(aligner.get_params()["n_max"], "inner steps at most per denoising step")

# 2. fit() loads the embedded model and runs Null-TTA.
aligner.fit(PROMPT)
plain = aligner.sample_baseline()[0]  # same seed, same sampler, no alignment
print(f"target reward: aligned {aligner.reward_:.3f}, plain {aligner.score(plain):.3f}")

# 3. The history has one row per denoising step.
history = aligner.history_
print("inner steps per step:", history[:, "inner_steps"][:5], "...")
print("reward after each inner loop (last 3):", [round(r, 3) for r in history[-3:, "reward"]])
print("phi' moved by", round(history[-1]["phi_distance"], 3), "from phi")

aligner.image_.save("aligned.png")
plain.save("plain.png")
