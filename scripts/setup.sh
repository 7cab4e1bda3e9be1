#!/usr/bin/env bash
# Create .venv with nulltta and its test/doc tools, once. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch first, pinned to the release this project is tested with (set TORCH_SPEC
# to another spec, e.g. a CUDA wheel index, on your own machine).
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

# find_spec, not import: importing nulltta (torch, Lightning, diffusers) costs ~10 s per run.
if [ -x .venv/bin/python ] && [ .venv/.installed -nt pyproject.toml ] && .venv/bin/python -c "
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in ('nulltta', 'pytest', 'mkdocs', 'ruff')))
" 2>/dev/null; then
  exit 0
fi
echo "setting up .venv (first run only) ..." >&2
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q $TORCH_SPEC
.venv/bin/python -m pip install -q -e ".[test,docs,plot]"
touch .venv/.installed
