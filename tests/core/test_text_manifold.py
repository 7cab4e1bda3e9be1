"""phi' on the text manifold: phi' = text_encoder(e'), e' the empty prompt's token embeddings."""

from __future__ import annotations

import pytest
import torch

from nulltta import NullTextAligner
from nulltta.adapters import make_adapter
from nulltta.testing_families import tiny_sdxl_pipeline

PROMPT = "a red circle"


@pytest.mark.parametrize("negative_prompt", [None, "a blue square"])
def test_the_starting_token_embeddings_encode_to_phi(tiny_pipe, negative_prompt):
    adapter = make_adapter(tiny_pipe)
    _, null = adapter.encode_prompt(PROMPT, negative_prompt)
    tokens = adapter.null_token_embeddings(negative_prompt)
    assert tokens.shape == null["encoder_hidden_states"].shape  # (1, L, D) for CLIP
    with torch.no_grad():
        encoded = adapter.encode_null_from_tokens(tokens, negative_prompt)
    torch.testing.assert_close(encoded["encoder_hidden_states"], null["encoder_hidden_states"])


def test_alignment_on_the_manifold_moves_e_and_phi_stays_an_encoder_output(embedded_pipe):
    aligner = NullTextAligner(
        embedded_pipe, "brightness", null_parameterisation="text_manifold",
        num_inference_steps=5, n_min=2, n_max=2, kl_weight=0.0, learning_rate=0.05,
    ).fit("a red circle on a white background")  # fmt: skip
    module = aligner.module_
    e_prime = module.null_embedding.detach()
    start = module.adapter.null_token_embeddings()
    assert (e_prime - start).norm() > 0  # the token embeddings moved
    with torch.no_grad():
        encoded = module.adapter.encode_null_from_tokens(e_prime)["encoder_hidden_states"]
    # The recorded phi' is the encoder's output for e', not a free tensor.
    torch.testing.assert_close(aligner.phi_[-1], encoded, atol=1e-5, rtol=1e-5)
    assert aligner.history_[-1]["phi_distance"] > 0
    replay = aligner.generate(seed=3, reoptimize=False, output_type="pt")
    assert replay.shape == (1, 3, 32, 32)


def test_families_without_one_clip_encoder_refuse_it_with_the_fix():
    pipe = tiny_sdxl_pipeline()
    aligner = NullTextAligner(pipe, "brightness", null_parameterisation="text_manifold",
                              num_inference_steps=2, n_min=1, n_max=1)  # fmt: skip
    with pytest.raises(NotImplementedError, match="use 'embedding'"):
        aligner.fit(PROMPT)
