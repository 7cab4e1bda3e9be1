#!/usr/bin/env bash
# Set up (if needed), then run the whole test suite, the linter and the docs build.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
export HF_HUB_OFFLINE=1

.venv/bin/python -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then  # no test selected: not a failure of the code
  echo "pytest: no tests were selected"
  status=0
fi
[ "$status" -eq 0 ] || exit "$status"

.venv/bin/ruff check nulltta tests benchmarks tutorials || exit 1
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "${TMPDIR:-/tmp}/nulltta-site" || exit 1
