#!/usr/bin/env bash
# Mutation check with mutmut over one module, in a scratch copy of HEAD.
#
#   bash tests/mutation/run.sh tests/mutation/equations.cfg [mutmut run options]
#
# The .cfg names the module (only_mutate) and the fast tests that must kill
# its mutants (pytest_add_cli_args_test_selection). The copy is made from the
# last commit (git archive; MUTATION_REV=REV for another), so uncommitted work in the tree is neither
# mutated nor disturbed; the config becomes the copy's setup.cfg, because
# mutmut reads its settings only from the working directory. Results stay in
# the copy: $MUTATION_DIR, default /tmp/nulltta-mutation-<cfg name>.
# See docs/how-to/contribute.md for how to read them.
set -euo pipefail
root=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cfg=$(realpath "$1")
shift
work=${MUTATION_DIR:-${TMPDIR:-/tmp}/nulltta-mutation-$(basename "$cfg" .cfg)}
rm -rf "$work"
mkdir -p "$work"
git -C "$root" archive "${MUTATION_REV:-HEAD}" | tar -x -C "$work"
cp "$cfg" "$work/setup.cfg"
cd "$work"
export HF_HUB_OFFLINE=1
nice -n 19 "$root/.venv/bin/mutmut" run --max-children "${MUTMUT_CHILDREN:-1}" "$@" | tail -n 5
# One line per mutant that was not killed, as "name: status"; the counts per status after it.
"$root/.venv/bin/mutmut" results --all true > results-all.txt
"$root/.venv/bin/mutmut" results > results.txt || true
echo "mutants: $(grep -c ': ' results-all.txt)"
sed -E 's/.*: //' results-all.txt | sort | uniq -c
echo "not killed: $work/results.txt (mutmut show NAME, run in $work, prints one)"
