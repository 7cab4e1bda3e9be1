from __future__ import annotations

import warnings

import pytest
from diffusers import PNDMScheduler

from nulltta import NullTextAligner
from nulltta.adapters import UnsupportedPipelineError, make_adapter
from nulltta.schedulers import UnsupportedSchedulerError, make_scheduler

PROMPT = "a red circle"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"guidance_scale": 1.0}, "s > 1"),
        ({"guidance_scale": 0.5}, "s > 1"),
        ({"n_min": 10, "n_max": 5}, "swap them"),
        ({"n_min": -1}, "n_min=-1"),
        ({"inner_steps_order": "down"}, "ramp_down"),
        ({"num_candidates": 0}, "num_candidates=0"),
        ({"num_candidates": -2}, "num_candidates"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"learning_rate": -1e-2}, "learning_rate"),
        ({"kl_mode": "tight"}, "kl_mode"),
        ({"gradient": "sgd"}, "gradient"),
        ({"eta": 0.0}, "eta > 0"),
        ({"zo_samples": 0}, "zo_samples"),
    ],
)
def test_bad_settings_fail_before_loading_the_model(params, match):
    # "no/such/model" would fail to load: the settings error must come first.
    aligner = NullTextAligner("./no/such/model", "brightness", **params)
    with pytest.raises(ValueError, match=match):
        aligner.fit(PROMPT)


def test_unknown_reward_lists_the_known_ones(tiny_pipe):
    with pytest.raises(ValueError, match="brightness"):
        NullTextAligner(tiny_pipe, "pickscorr", num_inference_steps=2).fit(PROMPT)


def test_missing_model_folder_is_named():
    with pytest.raises(FileNotFoundError, match="no/such/model"):
        NullTextAligner("./no/such/model", "brightness").fit(PROMPT)


def test_multistep_scheduler_is_refused_with_the_fix(tiny_pipe):
    pndm = PNDMScheduler.from_config(tiny_pipe.scheduler.config)
    with pytest.raises(UnsupportedSchedulerError, match="scheduler='ddim'"):
        make_scheduler(pndm, tiny_pipe.scheduler)
    with pytest.raises(UnsupportedSchedulerError, match="PNDMScheduler"):
        NullTextAligner(tiny_pipe, "brightness", scheduler=pndm).fit(PROMPT)


def test_clipped_scheduler_is_refused(tiny_pipe):
    from diffusers import DDPMScheduler

    clipped = DDPMScheduler(clip_sample=True)
    with pytest.raises(UnsupportedSchedulerError, match="clip_sample=False"):
        make_scheduler(clipped, tiny_pipe.scheduler)


def test_scheduler_is_a_copy_not_the_pipelines(tiny_pipe):
    scheduler = make_scheduler("pipeline", tiny_pipe.scheduler)
    assert scheduler is not tiny_pipe.scheduler
    assert type(scheduler) is type(tiny_pipe.scheduler)
    with pytest.raises(UnsupportedSchedulerError, match="unknown scheduler"):
        make_scheduler("euler", tiny_pipe.scheduler)


@pytest.mark.parametrize("size", [30, 14, 0])
def test_resolution_the_model_cannot_take(tiny_pipe, size):
    with pytest.raises(ValueError, match="multiple of 4"):
        NullTextAligner(tiny_pipe, "brightness", height=size, num_inference_steps=2).fit(PROMPT)


def test_long_prompt_warns_that_it_was_truncated(tiny_pipe):
    long_prompt = " ".join(["a red circle on a white background"] * 4)
    with pytest.warns(UserWarning, match="truncated"):
        NullTextAligner(tiny_pipe, "brightness", num_inference_steps=2, n_min=0, n_max=1).fit(
            long_prompt
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        NullTextAligner(tiny_pipe, "brightness", num_inference_steps=2, n_min=0, n_max=1).fit(
            PROMPT
        )


@pytest.mark.parametrize("prompt", ["", "   ", ["a red circle", ""], [], [3]])
def test_every_prompt_must_be_a_non_empty_string(tiny_pipe, prompt):
    with pytest.raises(ValueError, match="non-empty"):
        NullTextAligner(tiny_pipe, "brightness").fit(prompt)


def test_unsupported_pipeline_lists_supported_ones():
    class FluxPipeline:
        pass

    class KandinskyPipeline:
        pass

    with pytest.raises(UnsupportedPipelineError, match="guidance-distilled"):
        make_adapter(FluxPipeline())
    with pytest.raises(UnsupportedPipelineError, match="StableDiffusionPipeline"):
        make_adapter(KandinskyPipeline())


def test_ddim_built_from_a_config_without_clip_sample_does_not_clip():
    from diffusers import EulerDiscreteScheduler

    euler = EulerDiscreteScheduler(beta_schedule="scaled_linear")
    assert "clip_sample" not in euler.config
    assert make_scheduler("ddim", euler).config.clip_sample is False
