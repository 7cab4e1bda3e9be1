"""pytest plugin for the Python snippets of README.md and docs/ (``tests/test_docs.py`` runs it).

pytest-markdown-docs runs every ``python`` fence not marked ``notest``. This
plugin gives the fences what a reader has at hand, built small:

- ``pipe``: a tiny random-weight Stable Diffusion pipeline (``nulltta.testing``);
- ``aligner``: the embedded model fitted to "a red circle on a white
  background" with ``profile_memory=True``, as the tutorial's first snippet
  does (for snippets that continue a page's earlier one);
- every ``NullTextAligner`` runs 10 steps with 1 to 3 inner steps, so a
  snippet written with the release's schedule takes seconds, not minutes;
- each snippet runs in its own temporary folder (files it saves land there).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

SHORT_SCHEDULE = {"num_inference_steps": 10, "n_min": 1, "n_max": 3}
_GLOBALS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _short_schedule_in_a_temporary_folder(monkeypatch, tmp_path):
    import torch

    from nulltta import NullTextAligner

    torch.manual_seed(0)
    for name, value in SHORT_SCHEDULE.items():
        monkeypatch.setitem(NullTextAligner.__init__.__kwdefaults__, name, value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def pytest_markdown_docs_globals() -> dict[str, Any]:
    """``pipe`` and ``aligner``, built once per session."""
    if not _GLOBALS:
        import torch

        from nulltta import NullTextAligner
        from nulltta.testing import tiny_stable_diffusion_pipeline

        torch.set_num_threads(min(2, os.cpu_count() or 1))
        _GLOBALS["pipe"] = tiny_stable_diffusion_pipeline(seed=0)
        _GLOBALS["aligner"] = NullTextAligner(
            reward="shapes-preference", profile_memory=True, **SHORT_SCHEDULE
        ).fit("a red circle on a white background")
    return dict(_GLOBALS)
