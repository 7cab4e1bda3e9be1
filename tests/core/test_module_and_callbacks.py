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
from nulltta.optim import TrajectoryAdam
from nulltta.rewards import Brightness
from nulltta.trajectory import StepRecord, Trajectory, reset_optimizer_state

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
    param = torch.nn.Parameter(torch.ones(2, 3))
    reused = TrajectoryAdam([param], lr=0.1)
    for _ in range(3):
        param.grad = torch.ones(2, 3)
        reused.step()
    reset_optimizer_state(reused)
    twin = torch.nn.Parameter(param.detach().clone())
    fresh = TrajectoryAdam([twin], lr=0.1)
    param.grad = twin.grad = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, -4.0]])
    reused.step()
    fresh.step()
    torch.testing.assert_close(param, twin)


def test_trajectory_adam_equals_torch_adam_on_finite_steps():
    generator = torch.Generator().manual_seed(0)
    ours = torch.nn.Parameter(torch.randn(3, 4, 5, generator=generator))
    reference = torch.nn.Parameter(ours.detach().clone())
    mine, torch_adam = TrajectoryAdam([ours], lr=0.01), torch.optim.Adam([reference], lr=0.01)
    for _ in range(25):
        grad = torch.randn(3, 4, 5, generator=generator)
        ours.grad, reference.grad = grad.clone(), grad.clone()
        mine.step()
        torch_adam.step()
    torch.testing.assert_close(ours, reference, atol=1e-7, rtol=0)
    assert mine.last_updated.tolist() == [True, True, True]


def test_trajectory_adam_skips_a_non_finite_row_like_a_run_that_skipped_the_step():
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(3, 4, 5, generator=generator)
    stacked = torch.nn.Parameter(start.clone())
    singles = [torch.nn.Parameter(start[b : b + 1].clone()) for b in range(3)]
    ours = TrajectoryAdam([stacked], lr=0.05)
    alone = [torch.optim.Adam([p], lr=0.05) for p in singles]
    for step in range(12):
        grad = torch.randn(3, 4, 5, generator=generator)
        if step % 3 == 0:
            grad[1, 0, 0] = float("nan")
        if step % 4 == 1:
            grad[2, 3, 1] = float("inf")
        stacked.grad = grad.clone()
        ours.step()
        expected = [bool(torch.isfinite(grad[b]).all()) for b in range(3)]
        assert ours.last_updated.tolist() == expected
        for b in range(3):
            if expected[b]:  # a single run skips the step: no Adam step, no count
                singles[b].grad = grad[b : b + 1].clone()
                alone[b].step()
    for b in range(3):
        torch.testing.assert_close(stacked[b : b + 1], singles[b], atol=1e-7, rtol=0)
    steps = ours.state[stacked]["step"].tolist()
    assert steps == [12, 8, 9]


def test_histories_turn_records_into_rows_with_non_finite_values_as_none():
    record = StepRecord(
        shared={"step": 0},
        per_trajectory={"phi_distance": torch.tensor([0.5, float("nan")])},
        inner={
            "objective": torch.tensor([[1.0, 2.0], [3.0, float("nan")]]),
            "reward": torch.tensor([[0.1, 0.2], [0.3, 0.4]]),
            "kl_local": torch.zeros(2, 2),
            "kl_embedding": torch.tensor([[float("inf"), 0.0], [0.0, 0.0]]),
            "grad_norm": torch.tensor([[5.0, 6.0], [7.0, float("nan")]]),
            "skipped": torch.tensor([[False, False], [False, True]]),
            "active": torch.tensor([[True, True], [True, True]]),
        },
    )
    traj = Trajectory(
        prompts=["a", "b"], cond={}, null={}, null_packed=torch.zeros(2, 1),
        timesteps=[1], coefficients=[], inner_steps=[2], latents=torch.zeros(2, 1),
        generators=[None, None], records=[record],
    )  # fmt: skip
    first, second = traj.histories()
    inner = first[0]["inner"][0]
    assert inner["kl_embedding"] is None and inner["skipped"] is False
    assert [inner[k] for k in ("objective", "reward", "kl_local", "grad_norm")] == pytest.approx(
        [1.0, 0.1, 0.0, 5.0]
    )
    assert first[0]["objective"] == 2.0 and first[0]["phi_distance"] == 0.5
    assert second[0]["phi_distance"] is None
    assert second[0]["skipped_steps"] == 1 and second[0]["inner"][1]["grad_norm"] is None
    assert second[0]["objective"] is None and second[0]["inner_steps"] == 2


def test_annealing_callback_sets_tau(tiny_pipe):
    module = _module(tiny_pipe, steps=100)
    callback = KLAnnealing(0.008)
    callback.on_train_batch_start(None, module, 40, 40)
    assert module.kl_scale == pytest.approx(annealing_schedule(100)[40])
    callback.load_state_dict({"rate": 0.0})
    callback.on_train_batch_start(None, module, 99, 99)
    assert module.kl_scale == 1.0


def test_pick_best_is_k_major_and_never_picks_nan():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.2, 0.7, 0.3])  # K = 3, B = 2
    assert pick_best(scores, 3, 2).tolist() == [4, 1]
    with_nan = torch.tensor([0.1, float("nan"), float("nan"), 0.2, 0.7, 0.3])
    assert pick_best(with_nan, 3, 2).tolist() == [4, 5]


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
    assert len(module.trajectory.records) == 6


def test_user_callbacks_see_every_step(tiny_pipe):
    from lightning import Callback

    class Recorder(Callback):
        def __init__(self):
            self.rewards = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.rewards.append(outputs["record"].inner["reward"][:, -1].clone())

    recorder = Recorder()
    aligner = NullTextAligner(
        tiny_pipe, "brightness", num_inference_steps=5, n_min=1, n_max=2, callbacks=[recorder]
    ).fit(PROMPT)
    assert len(recorder.rewards) == 5
    history_rewards = aligner.history_[:, "reward"]
    assert [float(r[0]) for r in recorder.rewards] == pytest.approx(history_rewards, abs=1e-7)


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
