from __future__ import annotations

import pytest
import torch
from lightning import Trainer
from torch.utils.data import DataLoader

from nulltta import History, NullTextAligner
from nulltta.adapters import make_adapter
from nulltta.callbacks import GreedySelection, KLAnnealing, pick_best
from nulltta.config import AlignmentConfig
from nulltta.equations import annealing_schedule
from nulltta.loop import run_denoising_loop
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness
from nulltta.trajectory import inner_step_row, reset_optimizer_state

PROMPT = "a red circle"


def _module(pipe, steps=6, **config):
    config = AlignmentConfig(num_inference_steps=steps, n_min=1, n_max=2, **config).validate()
    module = NullTextModule(make_adapter(pipe), Brightness(), config)
    module.start_trajectory(PROMPT, 16, 16, torch.Generator().manual_seed(0))
    return module


def test_module_has_exactly_one_parameter(tiny_pipe):
    module = _module(tiny_pipe)
    params = list(module.named_parameters())
    assert [name for name, _ in params] == ["null_embedding"]
    assert params[0][1].shape == (1, 16, 8)
    assert not module.automatic_optimization


def test_reset_optimizer_state_equals_a_fresh_adam():
    param = torch.nn.Parameter(torch.ones(3))
    reused = torch.optim.Adam([param], lr=0.1)
    for _ in range(3):
        param.grad = torch.ones(3)
        reused.step()
    reset_optimizer_state(reused)
    twin = torch.nn.Parameter(param.detach().clone())
    fresh = torch.optim.Adam([twin], lr=0.1)
    param.grad = twin.grad = torch.tensor([1.0, -2.0, 0.5])
    reused.step()
    fresh.step()
    torch.testing.assert_close(param, twin)


def test_inner_step_row_means_and_marks_non_finite_values_as_none():
    parts = {
        "reward": torch.tensor([1.0, 3.0]),
        "kl_local": torch.tensor([0.5, float("nan")]),
        "kl_embedding": torch.tensor([float("inf"), 0.0]),
    }
    row = inner_step_row(torch.tensor([2.0, 4.0]), parts, torch.tensor([3.0, 4.0]), False)
    assert row == {
        "objective": 3.0,
        "reward": 2.0,
        "kl_local": None,
        "kl_embedding": None,
        "grad_norm": 5.0,
        "skipped": False,
    }
    assert inner_step_row(torch.tensor([1.0]), parts, None, True)["grad_norm"] is None


def test_annealing_callback_sets_tau(tiny_pipe):
    module = _module(tiny_pipe, steps=100)
    callback = KLAnnealing(0.008)
    callback.on_train_batch_start(None, module, 40, 40)
    assert module.kl_scale == pytest.approx(annealing_schedule(100)[40])
    callback.load_state_dict({"rate": 0.0})
    callback.on_train_batch_start(None, module, 99, 99)
    assert module.kl_scale == 1.0


def test_pick_best_is_k_major():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.7, 0.3])  # K = 3, B = 2
    assert pick_best(scores, 3, 2).tolist() == [4, 1]


def test_a_lightning_trainer_drives_the_module_like_our_loop(tiny_pipe):
    ours = run_denoising_loop(_module(tiny_pipe), [KLAnnealing(), GreedySelection(2)])
    module = _module(tiny_pipe)
    trainer = Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[KLAnnealing(), GreedySelection(2)],
    )
    steps = DataLoader(list(range(6)), batch_size=None)
    adapter = module.adapter
    with adapter.frozen():
        trainer.fit(module, train_dataloaders=steps)
    torch.testing.assert_close(
        module.trajectory.latents, ours.trajectory.latents, atol=1e-5, rtol=0
    )
    assert len(module.trajectory.history) == 6


def test_user_callbacks_see_every_step(tiny_pipe):
    from lightning import Callback

    class Recorder(Callback):
        def __init__(self):
            self.rewards = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.rewards.append(outputs["row"]["reward"])

    recorder = Recorder()
    NullTextAligner(
        tiny_pipe, "brightness", num_inference_steps=5, n_min=1, n_max=2, callbacks=[recorder]
    ).fit(PROMPT)
    assert len(recorder.rewards) == 5 and all(r is not None for r in recorder.rewards)


def test_history_indexing_and_json(tmp_path):
    history = History(
        [{"reward": 1.0, "inner": [{"o": 1}, {"o": 2}]}, {"reward": 2.0, "inner": []}]
    )
    assert history[:, "reward"] == [1.0, 2.0]
    assert history[0, "inner", :, "o"] == [1, 2]
    assert isinstance(history[:1], History)
    with pytest.raises(KeyError, match="no column"):
        history[:, "missing"]
    history.to_json(tmp_path / "h.json")
    assert History.from_json(tmp_path / "h.json") == history


def test_exact_kl_mode_runs_and_records_kl(tiny_pipe):
    aligner = NullTextAligner(
        tiny_pipe,
        "brightness",
        kl_mode="exact",
        num_inference_steps=5,
        n_min=1,
        n_max=2,
        anneal_kl=False,
    ).fit(PROMPT)
    assert all(row["kl_local"] >= 0 for row in aligner.history_)
    assert any(row["kl_embedding"] > 0 for row in aligner.history_)
