from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest

from nulltta.loading import embedded_model_available

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("[0-9]*.py"))


@pytest.mark.skipif(not embedded_model_available(), reason="embedded model not installed")
@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NULLTTA_QUICK", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(script.parent))
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip()
    sys.modules.pop("_settings", None)
    assert "NULLTTA_QUICK" in os.environ


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 3
