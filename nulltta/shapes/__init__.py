"""ShapesBench: the embedded toy world, its text-to-image model and its rewards.

- :mod:`nulltta.shapes.prompts`: the vocabulary and the prompt/caption grammar;
- :mod:`nulltta.shapes.world`: the renderer and the base image distribution;
- :mod:`nulltta.shapes.captions`: training captions with size and position words;
- :mod:`nulltta.shapes.model`: ``load_embedded_pipeline()``, the shipped model, and
  ``load_world_model(folder)``, a retrained one with the same profile;
- :mod:`nulltta.shapes.gold`: the gold reward, measured from pixels;
- :mod:`nulltta.shapes.scorers`, :mod:`nulltta.shapes.preference` and
  :mod:`nulltta.shapes.rewards`: the fidelity classifier, the learned proxies
  and the Frechet distance;
- ``python -m nulltta.shapes.evaluate``: the benchmark numbers;
- ``python -m nulltta.shapes.train_model --prediction-type v_prediction``:
  retrain the shipped model from scratch (:mod:`nulltta.shapes.train_vae`
  holds the autoencoder's stages).

Heavy modules (diffusers) load only when :mod:`nulltta.shapes.model` is imported.
"""

from .world import (
    BACKGROUNDS,
    COLORS,
    POSITION_PHRASES,
    SHAPES,
    SIZE_WORDS,
    PromptError,
    PromptParts,
    all_prompts,
    check_prompt,
    make_caption,
    make_prompt,
    parse_caption,
    parse_prompt,
    render,
    sample_batch,
)

__all__ = [
    "BACKGROUNDS",
    "COLORS",
    "POSITION_PHRASES",
    "SHAPES",
    "SIZE_WORDS",
    "PromptError",
    "PromptParts",
    "all_prompts",
    "check_prompt",
    "make_caption",
    "make_prompt",
    "parse_caption",
    "parse_prompt",
    "render",
    "sample_batch",
]
