"""The run's progress bar counts every rank's images of this run, and only those."""

from __future__ import annotations

from nulltta.run.manifest import append_part_row
from nulltta.run.progress import RunProgress


def test_the_bar_counts_rows_of_every_rank_from_this_attempt(tmp_path):
    append_part_row(tmp_path, 0, {"key": "p0000-s0", "attempt": "old", "status": "failed"})
    progress = RunProgress(tmp_path, ["p0000-s0", "p0000-s1", "p0001-s0"], "now", enabled=True)
    with progress:
        assert progress._bar.total == 3 and progress._bar.n == 0  # an earlier run's row
        append_part_row(tmp_path, 0, {"key": "p0000-s0", "attempt": "now", "status": "ok"})
        append_part_row(tmp_path, 3, {"key": "p0001-s0", "attempt": "now", "status": "failed"})
        progress.refresh()
        assert progress._bar.n == 2
        assert progress._bar.postfix == "failed=1"


def test_other_ranks_show_no_bar(tmp_path):
    with RunProgress(tmp_path, ["p0000-s0"], "now", enabled=False) as progress:
        progress.refresh()
        assert progress._bar is None
