from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from nulltta.loading import is_embedded, load_pipeline


def test_pipeline_objects_are_returned_unchanged(tiny_pipe):
    assert load_pipeline(tiny_pipe) is tiny_pipe


def test_a_local_folder_loads_offline_with_the_same_weights(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "model")
    loaded = load_pipeline(tmp_path / "model")
    assert isinstance(loaded, StableDiffusionPipeline)
    for name, tensor in tiny_pipe.unet.state_dict().items():
        torch.testing.assert_close(loaded.unet.state_dict()[name], tensor, atol=0, rtol=0)
    half = load_pipeline(str(tmp_path / "model"), torch_dtype=torch.float16)
    assert half.unet.dtype == torch.float16


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no diffusers model folder"):
        load_pipeline(tmp_path / "absent")


def test_embedded_names():
    assert is_embedded(None) and is_embedded("embedded") and is_embedded("Embedded")
    assert not is_embedded("./embedded-copy")


def test_a_pipeline_loaded_from_the_embedded_folder_is_the_embedded_model(tiny_pipe):
    from nulltta.loading import embedded_model_available

    assert not is_embedded(tiny_pipe)  # built in memory: no folder
    if embedded_model_available():
        from nulltta.shapes.model import load_embedded_pipeline

        assert is_embedded(load_embedded_pipeline())
