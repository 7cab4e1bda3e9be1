"""Tutorial 3: reuse a fitted phi' trajectory for new seeds; save and load it."""

import tempfile

from _settings import SCHEDULE

from nulltta import NullTextAligner

PROMPT = "a green triangle on a gray background"
SEEDS = range(1, 5)

aligner = NullTextAligner(reward="shapes-preference", **SCHEDULE).fit(PROMPT)

# Replaying phi' costs what a plain sample costs: no optimisation, no candidates.
amortised = aligner.generate(n_images=len(SEEDS), seed=SEEDS[0], reoptimize=False)
plain = aligner.sample_baseline(n_images=len(SEEDS), seed=SEEDS[0])
print(f"amortised {aligner.score(amortised):.3f} vs plain {aligner.score(plain):.3f}")

with tempfile.TemporaryDirectory() as folder:
    aligner.save(folder)
    restored = NullTextAligner.load(folder)  # the embedded model is loaded by name
    again = restored.generate(seed=SEEDS[0], reoptimize=False)[0]
    print("same image after save/load:", again.tobytes() == amortised[0].tobytes())
