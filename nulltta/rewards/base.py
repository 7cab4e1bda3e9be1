"""The reward interface: a torchmetrics ``Metric`` that scores images in [0, 1].

Every reward in nulltta, learned or hand-written, subclasses :class:`Reward`
and implements :meth:`Reward.score`. Calling the metric (``reward(images,
prompts)``, i.e. ``forward``) returns one score per image *with* gradients
when the reward is differentiable; ``update``/``compute`` accumulate a mean
score without building a graph, as torchmetrics metrics do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "CallableReward",
    "Reward",
    "RewardInputError",
    "check_images",
    "normalize_prompts",
]

# Decoded images are clamped to [0, 1]; a small slack tolerates rounding in
# user-supplied tensors without accepting images in [-1, 1] or [0, 255].
_RANGE_SLACK = 1e-3


class RewardInputError(ValueError):
    """Raised when images or prompts given to a reward have the wrong form."""


def check_images(images: Tensor) -> Tensor:
    """Validate a batch of images for a reward.

    Parameters
    ----------
    images : Tensor
        Float tensor of shape ``(B, 3, H, W)`` with values in ``[0, 1]``.

    Returns
    -------
    Tensor
        The same tensor, unchanged.

    Raises
    ------
    RewardInputError
        With the fix in the message, for a wrong type, shape or range.

    """
    if not isinstance(images, Tensor):
        raise RewardInputError(
            f"images must be a torch.Tensor of shape (B, 3, H, W) in [0, 1], got "
            f"{type(images).__name__}; convert PIL images with "
            "torchvision.transforms.functional.to_tensor."
        )
    if not images.is_floating_point():
        raise RewardInputError(
            f"images must be floating point in [0, 1], got dtype {images.dtype}; "
            "divide uint8 images by 255."
        )
    if images.ndim == 3:
        raise RewardInputError(
            f"images must be batched (B, 3, H, W), got shape {tuple(images.shape)}; "
            "add the batch dimension with images.unsqueeze(0)."
        )
    if images.ndim != 4 or images.shape[1] != 3:
        raise RewardInputError(
            f"images must have shape (B, 3, H, W), got {tuple(images.shape)}; "
            "channels come second (use images.permute(0, 3, 1, 2) for channels-last)."
        )
    if images.numel() > 0:
        low, high = images.detach().aminmax()
        if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
            raise RewardInputError(
                f"images must lie in [0, 1], got values in [{low.item():.3g}, {high.item():.3g}]; "
                "map [-1, 1] images with (images + 1) / 2 and [0, 255] ones with images / 255."
            )
    return images


def normalize_prompts(
    prompts: str | Sequence[str] | None, batch_size: int, required: bool
) -> list[str] | None:
    """Return one prompt per image.

    A single string, or a list of length one, is repeated for every image.

    Raises
    ------
    RewardInputError
        When prompts are required but missing, or their count does not match.

    """
    if prompts is None:
        if required:
            raise RewardInputError(
                "this reward compares images with their prompts: pass prompts=[...] "
                "(one per image, or a single string for all)."
            )
        return None
    if isinstance(prompts, str):
        return [prompts] * batch_size
    prompts = list(prompts)
    if len(prompts) == 1:
        return prompts * batch_size
    if len(prompts) != batch_size:
        raise RewardInputError(
            f"got {len(prompts)} prompts for {batch_size} images; pass one prompt per image "
            "or a single prompt for all of them."
        )
    return prompts


class Reward(Metric):
    """Base class of every reward: per-image scores of images in [0, 1].

    Subclasses implement :meth:`score` and set the class attributes below
    (torchmetrics forbids assigning them on an instance: a subclass whose
    differentiability depends on its arguments defines a property instead).

    Attributes
    ----------
    is_differentiable : bool
        Whether gradients of :meth:`score` reach the input images. The aligner
        uses zero-order updates for rewards that are not differentiable.
    higher_is_better : bool
        Always ``True`` for rewards the aligner maximises.
    requires_prompts : bool
        Whether scores depend on the prompt (PickScore, CLIPScore, ...).

    """

    is_differentiable: bool = True
    higher_is_better: bool = True
    full_state_update: bool = False
    requires_prompts: bool = False

    score_sum: Tensor
    num_images: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Sum states, not list states, so no graph or images are kept across steps.
        self.add_state(
            "score_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("num_images", default=torch.tensor(0), dist_reduce_fx="sum")

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Score a validated batch.

        Parameters
        ----------
        images : Tensor
            ``(B, 3, H, W)`` in ``[0, 1]``, already checked.
        prompts : list of str or None
            One prompt per image (``None`` only when ``requires_prompts`` is false).

        Returns
        -------
        Tensor
            Shape ``(B,)``, differentiable w.r.t. ``images`` if ``is_differentiable``.

        """
        raise NotImplementedError

    def _checked_scores(self, images: Tensor, prompts: str | Sequence[str] | None) -> Tensor:
        images = check_images(images)
        prompt_list = normalize_prompts(prompts, images.shape[0], self.requires_prompts)
        scores = self.score(images, prompt_list)
        if scores.shape != (images.shape[0],):
            raise RuntimeError(
                f"{type(self).__name__}.score returned shape {tuple(scores.shape)}, "
                f"expected ({images.shape[0]},): one score per image."
            )
        return scores.float()

    def _accumulate(self, scores: Tensor) -> None:
        self.score_sum += scores.detach().double().sum().to(self.score_sum.device)
        self.num_images += scores.numel()

    def forward(
        self, images: Tensor, prompts: str | Sequence[str] | None = None, trusted: bool = False
    ) -> Tensor:
        """Score images, keeping the graph; also accumulate the running mean.

        ``trusted=True`` is the alignment loop's hot path (:meth:`score_trusted`).

        Returns
        -------
        Tensor
            ``(B,)`` float32 scores.

        """
        if trusted:
            scores = self.score(images, prompts)
            if scores.shape != (images.shape[0],):
                raise RuntimeError(
                    f"{type(self).__name__}.score returned shape {tuple(scores.shape)}, "
                    f"expected ({images.shape[0]},): one score per image."
                )
            return scores.float()
        scores = self._checked_scores(images, prompts)
        self._accumulate(scores)
        # forward bypasses the wrapped update(), so mark the cached compute()
        # result stale the way torchmetrics' own update wrapper does.
        self._computed = None
        self._update_count += 1
        return scores

    def score_trusted(self, images: Tensor, prompts: list[str]) -> Tensor:
        """Score images the caller guarantees are valid, for the alignment loop's hot path.

        The caller promises ``(B, 3, H, W)`` float images in [0, 1] (the
        adapters' decoders clamp to that range) and one prompt per image. The
        range check of :meth:`forward` is skipped because it reads the images'
        minimum and maximum on the host, a device sync on every inner step; the
        running mean is not accumulated. Gradients flow, and module hooks run
        (the benchmark's cost counter counts these calls), as through a plain call.

        Returns
        -------
        Tensor
            ``(B,)`` float32 scores.

        """
        return self(images, prompts, trusted=True)

    def update(self, images: Tensor, prompts: str | Sequence[str] | None = None) -> None:
        """Accumulate scores of a batch without building a graph."""
        with torch.no_grad():
            self._accumulate(self._checked_scores(images, prompts))

    def compute(self) -> Tensor:
        """Mean score of every image seen since the last ``reset()``."""
        if self.num_images == 0:
            return torch.tensor(float("nan"))
        return (self.score_sum / self.num_images).float()


class CallableReward(Reward):
    """Wrap any ``fn(images, prompts) -> scores`` as a :class:`Reward`.

    Parameters
    ----------
    fn : callable
        Takes ``(B, 3, H, W)`` images in [0, 1] and a list of prompts (or
        ``None``), returns ``B`` scores (tensor, array or list).
    differentiable : bool, default=False
        Declare that gradients of ``fn`` reach the images. A plain callable is
        treated as a black box, so the aligner uses zero-order updates.
    requires_prompts : bool, default=False
        Whether ``fn`` needs the prompts.
    name : str, optional
        Name shown in histories and reports.

    """

    def __init__(
        self,
        fn: Callable[[Tensor, list[str] | None], Any],
        differentiable: bool = False,
        requires_prompts: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        self._differentiable = bool(differentiable)
        self.requires_prompts = requires_prompts
        self.name = name or getattr(fn, "__name__", type(fn).__name__)

    @property
    def is_differentiable(self) -> bool:  # type: ignore[override]
        """As declared by the ``differentiable`` argument."""
        return self._differentiable

    def score(self, images: Tensor, prompts: list[str] | None) -> Tensor:
        """Call the wrapped function and return its scores as a float tensor."""
        raw = self.fn(images, prompts)
        if isinstance(raw, Tensor):
            return raw.to(device=images.device, dtype=torch.float32).reshape(-1)
        return torch.as_tensor(raw, dtype=torch.float32, device=images.device).reshape(-1)
