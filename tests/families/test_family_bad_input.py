from __future__ import annotations

from types import SimpleNamespace

import pytest
from diffusers import (
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxKontextPipeline,
    FluxPipeline,
    LatentConsistencyModelPipeline,
    StableDiffusionXLImg2ImgPipeline,
)

from nulltta import NullTextAligner
from nulltta.adapters import UnsupportedPipelineError, make_adapter, supported_pipelines
from nulltta.schedulers import UnsupportedSchedulerError

PROMPT = "a red circle"


def _bare(cls):
    """An instance of a real pipeline class without components (only its class matters)."""
    return cls.__new__(cls)


def test_supported_families_are_listed():
    assert supported_pipelines() == [
        "StableDiffusionXLPipeline",
        "StableDiffusion3Pipeline",
        "StableDiffusionPipeline",
    ]


def test_unsupported_pipeline_error_lists_every_supported_family():
    with pytest.raises(UnsupportedPipelineError) as info:
        make_adapter(_bare(StableDiffusionXLImg2ImgPipeline))
    message = str(info.value)
    assert "StableDiffusionXLImg2ImgPipeline is not supported" in message
    for name in supported_pipelines():
        assert name in message


@pytest.mark.parametrize("cls", [FluxPipeline, FluxKontextPipeline])
def test_flux_is_refused_as_guidance_distilled(cls):
    with pytest.raises(UnsupportedPipelineError, match="guidance-distilled.*no phi to optimise"):
        make_adapter(_bare(cls))
    with pytest.raises(UnsupportedPipelineError, match="FLUX.1"):
        NullTextAligner(_bare(cls), "brightness").fit(PROMPT)


def test_latent_consistency_models_are_refused():
    with pytest.raises(UnsupportedPipelineError, match="latent consistency"):
        make_adapter(_bare(LatentConsistencyModelPipeline))

    class StableDiffusionXLPipeline:  # an LCM-distilled UNet behind a supported class
        unet = SimpleNamespace(config={"time_cond_proj_dim": 256})

    with pytest.raises(UnsupportedPipelineError, match="time_cond_proj_dim"):
        make_adapter(StableDiffusionXLPipeline())


def test_sd3_refuses_schedulers_without_a_flow_schedule(sd3_pipe):
    with pytest.raises(UnsupportedSchedulerError, match="flow-matching"):
        make_adapter(sd3_pipe, scheduler="ddpm")
    ddim = DDIMScheduler()
    with pytest.raises(UnsupportedSchedulerError, match="DDIMScheduler"):
        make_adapter(sd3_pipe, scheduler=ddim)
    stochastic = FlowMatchEulerDiscreteScheduler(stochastic_sampling=True)
    with pytest.raises(UnsupportedSchedulerError, match="stochastic_sampling"):
        make_adapter(sd3_pipe, scheduler=stochastic)
    assert make_adapter(sd3_pipe, scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0))


def test_sd3_resolution_must_be_a_multiple_of_vae_factor_times_patch(sd3_pipe):
    with pytest.raises(ValueError, match="multiple of 2"):
        NullTextAligner(sd3_pipe, "brightness", height=15, num_inference_steps=2).fit(PROMPT)


def test_sdxl_eta_zero_is_refused_by_the_aligner(sdxl_pipe):
    with pytest.raises(ValueError, match="eta > 0"):
        NullTextAligner(sdxl_pipe, "brightness", eta=0.0).fit(PROMPT)
