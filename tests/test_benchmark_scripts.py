"""The benchmark scripts that are not part of the package still build what they claim."""

from __future__ import annotations

import json
import math

import pytest
import torch

from nulltta.loading import embedded_model_available
from nulltta.shapes.model import load_embedded_pipeline

pytestmark = pytest.mark.skipif(
    not embedded_model_available(), reason="embedded model not installed"
)


@pytest.fixture(scope="module")
def architecture(load_benchmark):
    return load_benchmark("embedded_architecture")


@pytest.fixture(scope="module")
def base():
    return load_embedded_pipeline()


def _cross_attention_blocks(unet) -> list[str]:
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    return [type(block).__name__ for block in blocks if hasattr(block, "attentions")]


def test_shipped_layout_keeps_the_shipped_networks(architecture, base):
    pipe = architecture.build_layout(base, "shipped")
    assert pipe.unet is base.unet and pipe.vae is base.vae
    assert pipe.text_encoder is base.text_encoder


def test_layouts_move_cross_attention_and_keep_the_latent_space(architecture, base):
    shipped = _cross_attention_blocks(base.unet)
    assert len(shipped) == 5  # two down, the mid block, two up
    mid_only = architecture.build_layout(base, "mid-block-only")
    assert _cross_attention_blocks(mid_only.unet) == ["UNetMidBlock2DCrossAttn"]
    four_by_four = architecture.build_layout(base, "attention-4x4")
    assert _cross_attention_blocks(four_by_four.unet) == [
        "UNetMidBlock2DCrossAttn",
        "CrossAttnUpBlock2D",
    ]
    light = architecture.build_layout(base, "light-vae")
    assert light.unet is base.unet
    assert list(light.vae.config.block_out_channels) == [32, 32, 64]
    assert light.vae.config.scaling_factor == base.vae.config.scaling_factor
    latents = torch.randn(1, 4, 8, 8)
    for pipe in (mid_only, four_by_four, light):
        assert pipe.vae.decode(latents).sample.shape == (1, 3, 32, 32)
        cond = torch.randn(1, 16, pipe.unet.config.cross_attention_dim)
        assert pipe.unet(latents, 10, cond).sample.shape == latents.shape


def test_inner_step_time_is_a_positive_duration(architecture, base):
    pipe = architecture.build_layout(base, "mid-block-only")
    ms = architecture.time_inner_step(pipe, steps=2, inner=1)
    assert math.isfinite(ms) and ms > 0


def test_command_writes_one_row_per_layout_with_ratios_to_shipped(architecture, tmp_path):
    out = tmp_path / "arch.json"
    try:
        argv = ["--layouts", "shipped", "mid-block-only", "--steps", "2", "--inner", "1"]
        assert architecture.main([*argv, "--repeats", "1", "--json", str(out)]) == 0
    finally:
        torch.set_flush_denormal(False)  # the script turns it on; leave the process as found
    rows = {row["layout"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"shipped", "mid-block-only"}
    assert rows["shipped"]["ratio_to_shipped"] == 1.0
    assert rows["mid-block-only"]["unet_vae_params_m"] < rows["shipped"]["unet_vae_params_m"]
    with pytest.raises(SystemExit):
        architecture.main(["--layouts", "mid-block-only"])


def test_default_schedule_has_the_inner_steps_the_model_card_quotes(architecture):
    assert architecture.DEFAULT_SCHEDULE_INNER_STEPS == 1520


def test_vs_release_flags_a_model_the_release_misreads(load_benchmark, base):
    vs_release = load_benchmark("vs_release")
    assert vs_release.release_caveat("epsilon") is None
    caveat = vs_release.release_caveat(base.scheduler.config.prediction_type)
    assert caveat is not None and "'v_prediction'" in caveat  # the shipped model, 2.1
    entry = {"seconds_per_image": 1.0, "time_vs_release": 1.0, "peak_memory_mb": 1.0,
             "target": {"mean": 0.5, "se": 0.1}}  # fmt: skip

    class Args:
        model, device, steps = "embedded", "cpu", 20

    table = vs_release.markdown({"release": entry}, Args(), caveat)
    assert table.splitlines()[2] == f"**{caveat}**"
    assert vs_release.markdown({"release": entry}, Args()).splitlines()[2].startswith("| method")


def test_vs_release_runs_nulltta_in_the_release_order_on_any_model(load_benchmark):
    from nulltta.shapes.profile import ALIGNMENT_DEFAULTS

    settings = load_benchmark("vs_release").RELEASE_SETTINGS
    assert ALIGNMENT_DEFAULTS["inner_steps_order"] == "ramp_down"  # what it must override
    assert settings["inner_steps_order"] == "ramp_up"
