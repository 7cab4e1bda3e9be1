"""Method names for the command line: ``"dno"``, ``"best-of-n:n=16"``, ``"nulltta:n_max=55"``."""

from __future__ import annotations

from typing import Any

from .base import Method
from .best_of_n import BestOfN
from .das import DAS
from .dno import DNO
from .nulltta_method import GreedySelection, NullTTA
from .plain import PlainSampling

__all__ = ["FAST_SETTINGS", "METHOD_PRESETS", "RELEASE_KL", "make_method", "parse_value"]

#: Null-TTA's fast settings: optimise every other timestep (half the inner
#: steps) with twice the step size.
FAST_SETTINGS: dict[str, Any] = {"optimize_every": 2, "learning_rate": 0.02}

#: The release's KL settings, step size and inner-step order, whatever the
#: model's defaults are.
RELEASE_KL: dict[str, Any] = {
    "kl_weight": 0.002, "anneal_kl": True, "learning_rate": 0.01, "inner_steps_order": "ramp_up",
}  # fmt: skip

#: name -> (class, settings that differ from the class defaults)
METHOD_PRESETS: dict[str, tuple[type[Method], dict[str, Any]]] = {
    "plain": (PlainSampling, {}),
    "best-of-n": (BestOfN, {}),
    "greedy": (GreedySelection, {}),
    "dno": (DNO, {}),
    "dno-noreg": (DNO, {"regularization": 0.0}),
    "das": (DAS, {}),
    "nulltta": (NullTTA, {}),
    "nulltta-fast": (NullTTA, FAST_SETTINGS),
    "nulltta-release": (NullTTA, RELEASE_KL),
    "nulltta-release-fast": (NullTTA, {**RELEASE_KL, **FAST_SETTINGS}),
    "nulltta-manifold": (NullTTA, {"null_parameterisation": "text_manifold"}),
}


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, ``"none"`` -> None, else the text."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_method(spec: str) -> Method:
    """Build a method from ``"name"`` or ``"name:key=value:key=value"``.

    Raises
    ------
    ValueError
        For an unknown name or setting; the message lists the valid ones.

    """
    name, *pairs = spec.strip().split(":")
    if name not in METHOD_PRESETS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHOD_PRESETS)}")
    cls, preset = METHOD_PRESETS[name]
    settings = dict(preset)
    fields = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in fields:
            raise ValueError(
                f"cannot read {pair!r} in method {spec!r}: write name:key=value with key one of "
                f"{sorted(fields) or 'none (this method has no settings)'}"
            )
        settings[key] = parse_value(value)
    return cls(**settings)
