"""ShapesBench: the embedded toy world, its text-to-image model and its scorers.

- :mod:`nulltta.shapes.world`: the data generator, prompts and hidden preference;
- :mod:`nulltta.shapes.model`: ``load_embedded_pipeline()``, the shipped model;
- :mod:`nulltta.shapes.scorers` and :mod:`nulltta.shapes.rewards`: the
  fidelity classifier, preference models and Frechet distance;
- ``python -m nulltta.shapes.evaluate``: the benchmark numbers;
- ``python -m nulltta.shapes.train_model``: retrain the model from scratch
  (:mod:`nulltta.shapes.train_vae` holds the autoencoder's stages).

Heavy modules (diffusers) load only when :mod:`nulltta.shapes.model` is imported.
"""

from .world import (
    BACKGROUNDS,
    COLORS,
    SHAPES,
    PromptError,
    all_prompts,
    check_prompt,
    make_prompt,
    parse_prompt,
    preference_score,
    render,
    sample_batch,
)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "SHAPES",
    "PromptError",
    "all_prompts",
    "check_prompt",
    "make_prompt",
    "parse_prompt",
    "preference_score",
    "render",
    "sample_batch",
]
