"""Model-dependent settings: None takes the model's value, anything given is kept."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from nulltta.config import MODEL_DEPENDENT_SETTINGS, AlignmentConfig, config_from


def _settings(**changes):
    settings = asdict(AlignmentConfig())
    settings.update({name: None for name in MODEL_DEPENDENT_SETTINGS})
    settings.update(changes)
    return settings


def test_none_takes_the_release_values_without_model_defaults():
    config = config_from(_settings())
    assert (config.guidance_scale, config.kl_weight, config.anneal_kl) == (7.5, 0.002, True)


def test_model_defaults_fill_only_the_settings_left_none():
    model = {"guidance_scale": 5.0, "kl_weight": 0.2, "anneal_kl": False}
    config = config_from(_settings(kl_weight=0.01), model)
    assert (config.guidance_scale, config.kl_weight, config.anneal_kl) == (5.0, 0.01, False)
    assert config_from(_settings(), {"guidance_scale": 5.0}).kl_weight == 0.002


def test_resolved_settings_are_validated():
    with pytest.raises(ValueError, match="guidance_scale"):
        config_from(_settings(), {"guidance_scale": 1.0})


def test_the_inner_step_order_is_the_models_unless_given():
    assert config_from(_settings()).inner_steps_order == "ramp_up"  # the release's
    model = {"inner_steps_order": "ramp_down"}
    assert config_from(_settings(), model).inner_steps_order == "ramp_down"
    assert config_from(_settings(inner_steps_order="ramp_up"), model).inner_steps_order == "ramp_up"
