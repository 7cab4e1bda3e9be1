"""Rewards by name: ``get_reward("pickscore")``, ``"brightness"``, ``"a:0.7,b:0.3"``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import CallableReward, Reward

__all__ = ["RewardSpec", "available_rewards", "get_reward", "register_reward", "reward_specs"]


@dataclass(frozen=True)
class RewardSpec:
    """What the registry knows of one named reward.

    Attributes
    ----------
    name : str
        The name used in ``get_reward`` and on the command line.
    factory : callable
        Builds the reward; keyword arguments of ``get_reward`` are passed on.
    description : str
        One line for ``nulltta rewards``.
    needs : str
        What must be on the machine (weights, packages); empty for none.
    is_available : callable
        Returns ``(found, where)`` without loading anything heavy.

    """

    name: str
    factory: Callable[..., Reward]
    description: str
    needs: str = ""
    is_available: Callable[[], tuple[bool, str]] = lambda: (True, "built in")


_REGISTRY: dict[str, RewardSpec] = {}


def register_reward(
    name: str,
    description: str,
    needs: str = "",
    is_available: Callable[[], tuple[bool, str]] | None = None,
) -> Callable[[Callable[..., Reward]], Callable[..., Reward]]:
    """Decorator that registers a reward factory under ``name``."""

    def decorator(factory: Callable[..., Reward]) -> Callable[..., Reward]:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"a reward named {name!r} is already registered")
        _REGISTRY[key] = RewardSpec(
            key, factory, description, needs, is_available or (lambda: (True, "built in"))
        )
        return factory

    return decorator


def _load_builtin_rewards() -> None:
    # Importing the package registers every built-in reward module.
    import nulltta.rewards  # noqa: F401


def reward_specs() -> list[RewardSpec]:
    """All registered rewards, sorted by name."""
    _load_builtin_rewards()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def available_rewards() -> list[str]:
    """Names accepted by :func:`get_reward`."""
    return [spec.name for spec in reward_specs()]


def _parse_weighted(spec: str) -> list[tuple[str, float]]:
    terms = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        try:
            terms.append((name.strip(), float(weight) if weight else 1.0))
        except ValueError:
            raise ValueError(
                f"cannot read the weight in {part.strip()!r}; write weighted rewards as "
                "'name:weight,name:weight', e.g. 'pickscore:0.5,hpsv2:0.5'."
            ) from None
    return terms


def get_reward(reward: str | Reward | Callable[..., Any], **kwargs: Any) -> Reward:
    """Resolve a reward given by name, as an object, or as a plain callable.

    Parameters
    ----------
    reward : str, Reward or callable
        A registered name (see :func:`available_rewards`); several weighted
        names ``"a:0.7,b:0.3"``; a :class:`Reward` (returned as is); or a
        callable ``(images, prompts) -> scores``, treated as a black box.
    **kwargs
        Passed to the reward's factory (names only).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.

    """
    if isinstance(reward, Reward):
        return reward
    if isinstance(reward, str):
        _load_builtin_rewards()
        if "," in reward or ":" in reward:
            from .combined import WeightedReward

            terms = _parse_weighted(reward)
            return WeightedReward([(get_reward(name, **kwargs), w) for name, w in terms])
        key = reward.strip().lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"unknown reward {reward!r}; choose one of {', '.join(available_rewards())}, "
                "pass a Reward object, or any callable (images, prompts) -> scores."
            )
        return _REGISTRY[key].factory(**kwargs)
    if callable(reward):
        return CallableReward(reward)
    raise TypeError(f"reward must be a name, a Reward or a callable, got {type(reward).__name__}")
