"""Score formulas against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nulltta.rewards.functional import (
    IMAGEREWARD_MEAN,
    IMAGEREWARD_STD,
    aesthetic_score,
    clip_score_from_embeddings,
    cosine_similarity,
    hps_score,
    imagereward_normalize,
    l2_normalize,
    pickscore_from_embeddings,
)
from nulltta.rewards.pretrained import MLPHead

IMG = torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]])
TXT = torch.tensor([[4.0, 3.0, 0.0], [-2.0, 0.0, 0.0]])
COS = torch.tensor([24.0 / 25.0, -1.0])


def test_cosine_and_hps_are_the_cosine():
    torch.testing.assert_close(cosine_similarity(IMG, TXT), COS)
    torch.testing.assert_close(hps_score(IMG, TXT), COS)
    # One prompt row broadcasts over all images.
    torch.testing.assert_close(cosine_similarity(IMG, TXT[:1]), torch.tensor([0.96, 0.8]))


def test_pickscore_uses_the_exponentiated_logit_scale():
    scale = torch.tensor(math.log(100.0))
    torch.testing.assert_close(pickscore_from_embeddings(IMG, TXT, scale), 100.0 * COS)
    torch.testing.assert_close(pickscore_from_embeddings(IMG, TXT, 0.0), COS)


def test_clip_score_is_100_cos_clamped_at_zero():
    torch.testing.assert_close(clip_score_from_embeddings(IMG, TXT), torch.tensor([96.0, 0.0]))


def test_scores_are_float32_from_half_embeddings_and_keep_the_graph():
    img = IMG.half().requires_grad_()
    out = pickscore_from_embeddings(img, TXT.bfloat16(), torch.tensor(1.0, dtype=torch.float16))
    assert out.dtype == torch.float32
    out.sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all()


def test_shape_errors():
    with pytest.raises(ValueError, match="differ in size"):
        cosine_similarity(IMG, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        hps_score(IMG[0], TXT[0])
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        aesthetic_score(IMG[0], MLPHead(3))


def test_l2_normalize_matches_the_reference_numpy_normalized():
    def normalized(a, axis=-1, order=2):  # improved-aesthetic-predictor's helper
        l2 = np.atleast_1d(np.linalg.norm(a, order, axis))
        l2[l2 == 0] = 1
        return a / np.expand_dims(l2, axis)

    x = torch.cat([torch.randn(3, 5), torch.zeros(1, 5)])
    np.testing.assert_allclose(l2_normalize(x).numpy(), normalized(x.numpy()), rtol=1e-6)


def test_aesthetic_score_is_one_affine_map_of_the_normalised_embedding():
    head = MLPHead(6).eval()
    emb = torch.randn(4, 6)
    weight, bias = torch.eye(6), torch.zeros(6)
    for index in (0, 2, 4, 6, 7):  # no activations: the head is affine
        layer = head.layers[index]
        weight, bias = layer.weight @ weight, layer.weight @ bias + layer.bias
    unit = emb / emb.norm(dim=-1, keepdim=True)
    expected = (unit @ weight.T + bias).squeeze(-1)
    torch.testing.assert_close(aesthetic_score(emb, head), expected, rtol=1e-5, atol=1e-6)
    # Scale invariance: the head sees unit vectors only.
    torch.testing.assert_close(aesthetic_score(7.0 * emb, head), expected, rtol=1e-5, atol=1e-6)


def test_imagereward_normalize_uses_the_reference_constants():
    assert IMAGEREWARD_MEAN == 0.16717362830052426
    assert IMAGEREWARD_STD == 1.0333394966054072
    raw = torch.tensor([IMAGEREWARD_MEAN, IMAGEREWARD_MEAN + IMAGEREWARD_STD], dtype=torch.float16)
    out = imagereward_normalize(raw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0]), atol=2e-3, rtol=0)


def test_mlp_head_has_the_checkpoint_layout():
    head = MLPHead(768)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "layers.0.weight": (1024, 768), "layers.0.bias": (1024,),
        "layers.2.weight": (128, 1024), "layers.2.bias": (128,),
        "layers.4.weight": (64, 128), "layers.4.bias": (64,),
        "layers.6.weight": (16, 64), "layers.6.bias": (16,),
        "layers.7.weight": (1, 16), "layers.7.bias": (1,),
    }
    dropouts = [m.p for m in head.layers if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.2, 0.2, 0.1]
