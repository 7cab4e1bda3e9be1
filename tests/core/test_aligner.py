from __future__ import annotations

import hashlib

import pytest
import torch
from lightning import Callback
from sklearn.base import clone
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from nulltta import NotFittedError, NullTextAligner
from nulltta.callbacks import (
    AlignmentProgressBar,
    FixedNullTrajectory,
    MemoryProfiler,
    method_callbacks,
)
from nulltta.module import NullTextModule
from nulltta.rewards import Brightness, CallableReward

PROMPT = "a red circle on a white background"


def _weights_digest(pipe) -> str:
    digest = hashlib.sha256()
    for module in (pipe.unet, pipe.vae, pipe.text_encoder):
        for name, tensor in module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def test_plain_settings_equal_the_stock_pipeline(tiny_pipe):
    aligner = NullTextAligner(tiny_pipe, "brightness", num_inference_steps=12, seed=3)
    ours = aligner.sample_baseline(PROMPT, output_type="pt")
    reference = tiny_pipe(
        PROMPT,
        num_inference_steps=12,
        guidance_scale=7.5,
        eta=1.0,
        generator=torch.Generator().manual_seed(3),
        output_type="pt",
    ).images
    # Same draws in the same order; only float rounding differs (the UNet sees
    # batch 1 twice instead of one batch of 2).
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_aligned_image_beats_plain_sampling_on_most_seeds(tiny_pipe, fast_kwargs):
    wins = 0
    for seed in range(5):
        aligner = NullTextAligner(
            tiny_pipe, "brightness", seed=seed, num_candidates=1, **fast_kwargs
        ).fit(PROMPT)
        plain = aligner.sample_baseline(output_type="pt")
        wins += aligner.reward_ > aligner.score(plain)
    assert wins >= 4


def test_only_phi_gets_gradients_and_weights_stay_identical(tiny_pipe, fast_kwargs):
    before = _weights_digest(tiny_pipe)
    flags = [p.requires_grad for p in tiny_pipe.unet.parameters()]
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs).fit(PROMPT)
    names = [name for name, _ in aligner.module_.named_parameters()]
    assert names == ["null_embedding"]
    assert all(p.grad is None for p in tiny_pipe.unet.parameters())
    assert _weights_digest(tiny_pipe) == before
    assert [p.requires_grad for p in tiny_pipe.unet.parameters()] == flags


def test_phi_moves_and_history_is_complete(tiny_pipe, fast_kwargs):
    aligner = NullTextAligner(tiny_pipe, "brightness", profile_memory=True, **fast_kwargs)
    aligner.fit(PROMPT)
    history = aligner.history_
    assert len(history) == 8
    assert history[:, "inner_steps"] == aligner.module_.trajectory.inner_steps
    assert len(history[-1, "inner", :, "objective"]) == history[-1]["inner_steps"]
    assert all(row["peak_memory_mb"] > 0 for row in history)
    assert history[-1]["phi_distance"] > 0
    assert aligner.phi_.shape == (8, 1, 16, 8)
    torch.testing.assert_close(aligner.phi_[-1], aligner.module_.null_embedding.detach())
    history.to_json()  # JSON-safe


def test_same_seed_same_image(tiny_pipe, fast_kwargs):
    first = NullTextAligner(tiny_pipe, "brightness", seed=7, **fast_kwargs).fit(PROMPT)
    second = NullTextAligner(tiny_pipe, "brightness", seed=7, **fast_kwargs).fit(PROMPT)
    assert first.image_.tobytes() == second.image_.tobytes()
    torch.testing.assert_close(first.phi_, second.phi_, atol=0, rtol=0)
    other = NullTextAligner(tiny_pipe, "brightness", seed=8, **fast_kwargs).fit(PROMPT)
    assert other.image_.tobytes() != first.image_.tobytes()


def test_greedy_selection_keeps_the_best_candidate(tiny_pipe, fast_kwargs):
    aligner = NullTextAligner(tiny_pipe, "brightness", num_candidates=4, **fast_kwargs).fit(PROMPT)
    rows = [row for row in aligner.history_ if "candidate_rewards" in row]
    assert rows, "selection ran at no step"
    for row in rows:
        assert len(row["candidate_rewards"]) == 4
        assert row["selected_reward"] == max(row["candidate_rewards"])


def test_ramp_down_runs_the_release_inner_steps_in_reverse(tiny_pipe, fast_kwargs):
    settings = {**fast_kwargs, "schedule_rate": 0.1}
    ramp_up = NullTextAligner(tiny_pipe, "brightness", **settings).fit(PROMPT)
    ramp_down = NullTextAligner(
        tiny_pipe, "brightness", inner_steps_order="ramp_down", **settings
    ).fit(PROMPT)
    counts = ramp_up.history_[:, "inner_steps"]
    assert counts != counts[::-1]  # the test would not see a reversal otherwise
    assert ramp_down.history_[:, "inner_steps"] == counts[::-1]
    assert [len(row["inner"]) for row in ramp_down.history_] == counts[::-1]
    assert ramp_down.config_.inner_steps_order == "ramp_down"


def test_conditional_branch_is_cached_and_only_uncond_is_in_the_graph(tiny_pipe):
    calls = []

    def record(module, args, kwargs, output):
        calls.append((args[0].shape[0], torch.is_grad_enabled()))

    handle = tiny_pipe.unet.register_forward_hook(record, with_kwargs=True)
    try:
        aligner = NullTextAligner(
            tiny_pipe, "brightness", num_inference_steps=4, n_min=2, n_max=2, num_candidates=3
        ).fit(PROMPT)
    finally:
        handle.remove()
    graph_calls = [batch for batch, grad in calls if grad]
    assert graph_calls == [1] * 8  # one unconditional pass per inner step, batch 1
    # per step: eps_ref + final phi' pass + a batched CFG pass over 3 candidates
    # (6 rows); the conditional pass is always the cached greedy winner's.
    no_grad = [batch for batch, grad in calls if not grad]
    assert no_grad.count(6) == 4  # initial selection + 3 non-final steps
    assert len(no_grad) == 4 + 2 * 4
    assert aligner.history_[-1]["inner_steps"] == 2


def test_zeroth_order_is_used_for_black_box_rewards(tiny_pipe, fast_kwargs):
    black_box = CallableReward(lambda images, prompts: images.mean((1, 2, 3)))
    aligner = NullTextAligner(tiny_pipe, black_box, num_candidates=1, **fast_kwargs).fit(PROMPT)
    assert aligner.module_.zeroth_order
    assert aligner.module_.reward_weight == 50.0
    grads = [g for g in aligner.history_[:, "inner", :, "grad_norm"] for g in g]
    assert grads and all(g is not None and g > 0 for g in grads)
    assert aligner.history_[-1]["phi_distance"] > 0


def test_zeroth_order_raises_a_smooth_black_box_reward(tiny_pipe, fast_kwargs):
    wins = 0
    for seed in range(3):
        black_box = CallableReward(lambda images, prompts: images.mean((1, 2, 3)))
        aligner = NullTextAligner(
            tiny_pipe, black_box, seed=seed, num_candidates=1, zo_smoothing=0.05, **fast_kwargs
        ).fit(PROMPT)
        wins += aligner.reward_ > aligner.score(aligner.sample_baseline(output_type="pt"))
    assert wins >= 2


def test_nan_objective_steps_are_skipped_and_counted(tiny_pipe, fast_kwargs):
    nan_reward = CallableReward(
        lambda images, prompts: images.mean((1, 2, 3)) * float("nan"), differentiable=True
    )
    aligner = NullTextAligner(tiny_pipe, nan_reward, num_candidates=1, **fast_kwargs).fit(PROMPT)
    assert aligner.history_[:, "skipped_steps"] == aligner.history_[:, "inner_steps"]
    assert aligner.history_[-1]["phi_distance"] == 0.0


def test_get_set_params_and_clone_share_the_pipeline(tiny_pipe):
    reward = Brightness()
    aligner = NullTextAligner(tiny_pipe, reward, n_max=40, callbacks=[])
    assert aligner.get_params()["n_max"] == 40
    aligner.set_params(n_max=30, kl_mode="exact")
    twin = clone(aligner)
    assert twin.pipeline is tiny_pipe and twin.reward is reward
    assert twin.get_params()["n_max"] == 30 and twin.kl_mode == "exact"
    assert not hasattr(twin, "phi_")


def test_fit_again_starts_from_scratch(tiny_pipe, fast_kwargs):
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs)
    first = aligner.fit(PROMPT).phi_.clone()
    assert aligner.fit(PROMPT) is aligner
    torch.testing.assert_close(aligner.phi_, first, atol=0, rtol=0)


def test_generate_before_fit_raises(tiny_pipe):
    aligner = NullTextAligner(tiny_pipe, "brightness")
    with pytest.raises(NotFittedError, match="fit"):
        aligner.generate()
    assert issubclass(NotFittedError, SklearnNotFittedError)


def test_generate_and_amortised_replay(tiny_pipe, fast_kwargs):
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs).fit(PROMPT)
    images = aligner.generate(n_images=2, seed=10)
    assert len(images) == 2 and images[0].size == (16, 16)
    replay = aligner.generate(n_images=2, seed=10, reoptimize=False, output_type="pt")
    again = aligner.generate(n_images=2, seed=10, reoptimize=False, output_type="pt")
    torch.testing.assert_close(replay, again, atol=0, rtol=0)
    plain = aligner.sample_baseline(n_images=2, seed=10, output_type="pt")
    assert not torch.equal(replay, plain)


class RecordNull(Callback):
    """Records phi' as the step starts, after every built-in callback has run."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.phi: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps.append(int(batch))
        self.phi.append(pl_module.null_embedding.detach().clone())


def test_amortised_replay_feeds_phi_i_at_step_i(tiny_pipe, fast_kwargs):
    recorder = RecordNull()
    aligner = NullTextAligner(tiny_pipe, "brightness", callbacks=[recorder], **fast_kwargs)
    aligner.fit(PROMPT)
    steps = fast_kwargs["num_inference_steps"]
    phi = aligner.phi_
    assert phi.shape[0] == steps
    # The trajectory moves, so replaying one phi' at every step differs from it.
    assert all(not torch.equal(phi[i], phi[-1]) for i in range(steps - 1))
    # In a replay, only observers run after the fixed trajectory, and user
    # callbacks (the recorder) run after all built-in ones.
    fixed = FixedNullTrajectory(phi)
    built_in = method_callbacks(aligner.config_.plain_sampling(), [fixed], progress=True)
    after = built_in[built_in.index(fixed) + 1 :]
    assert all(isinstance(c, (MemoryProfiler, AlignmentProgressBar)) for c in after)
    recorder.steps.clear()
    recorder.phi.clear()
    aligner.generate(n_images=1, seed=5, reoptimize=False)
    assert recorder.steps == list(range(steps))
    for i, recorded in enumerate(recorder.phi):
        expected = phi[i].to(recorded).expand_as(recorded)
        torch.testing.assert_close(recorded, expected, atol=0, rtol=0, msg=f"step {i}")


def test_save_and_load_round_trip(tiny_pipe, fast_kwargs, tmp_path):
    aligner = NullTextAligner(tiny_pipe, "brightness", **fast_kwargs).fit(PROMPT)
    aligner.save(tmp_path / "run")
    loaded = NullTextAligner.load(tmp_path / "run", pipeline=tiny_pipe)
    torch.testing.assert_close(loaded.phi_, aligner.phi_)
    assert loaded.prompt_ == PROMPT and loaded.n_max == aligner.n_max
    first = loaded.generate(seed=3, reoptimize=False, output_type="pt")
    torch.testing.assert_close(first, aligner.generate(seed=3, reoptimize=False, output_type="pt"))


class _CountingModule(NullTextModule):
    """A module subclass that counts the trajectories it starts."""

    started = 0

    def start_trajectory(self, prompts, *args, **kwargs):
        type(self).started += len(prompts)
        return super().start_trajectory(prompts, *args, **kwargs)


class _CountingAligner(NullTextAligner):
    module_class = _CountingModule


def test_an_estimator_subclass_runs_its_module_class(tiny_pipe, fast_kwargs):
    _CountingModule.started = 0
    aligner = _CountingAligner(tiny_pipe, "brightness", batch_size=1, **fast_kwargs)
    aligner.fit(["a red circle", "a cat"], seeds=[0, 1])
    assert type(aligner.module_) is _CountingModule and _CountingModule.started == 2
    assert type(clone(aligner)) is _CountingAligner
