#!/usr/bin/env bash
# Set up (if needed), then run the nulltta command line, e.g.
#   bash scripts/run.sh generate "a red circle on a white background"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/nulltta "$@"
