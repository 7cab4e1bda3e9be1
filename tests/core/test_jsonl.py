from __future__ import annotations

import json
import math
import warnings

import pytest

from nulltta.jsonl import PartialRowWarning, append_row, read_rows

ROWS = [{"method": "plain", "seed": 0, "reward": 0.5}, {"method": "greedy", "seed": 1, "x": [1]}]


def test_rows_round_trip_one_line_each(tmp_path):
    path = tmp_path / "rows.jsonl"
    assert read_rows(path) == []
    for row in ROWS:
        append_row(path, row)
    assert read_rows(path) == ROWS
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in ROWS)
    append_row(path, {"text": "two\nlines", "nan": math.nan})
    last = read_rows(path)[-1]
    assert last["text"] == "two\nlines" and math.isnan(last["nan"])
    assert len(path.read_text().splitlines()) == 3


@pytest.mark.parametrize("cut", [1, 10, -2])
def test_a_partial_last_line_is_skipped_on_read_and_removed_on_append(tmp_path, cut):
    path = tmp_path / "rows.jsonl"
    for row in ROWS:
        append_row(path, row)
    full = path.read_bytes()
    second = full.index(b"\n") + 1
    path.write_bytes(full[: second + cut % (len(full) - second - 1)])  # mid second line
    with pytest.warns(PartialRowWarning, match="partial row"):
        assert read_rows(path) == ROWS[:1]
    with pytest.warns(PartialRowWarning, match="removed a partial last row"):
        append_row(path, ROWS[1])
    assert path.read_bytes() == full
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_rows(path) == ROWS


def test_a_whole_last_row_without_newline_is_kept(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_rows(path) == ROWS[:1]
        append_row(path, ROWS[1])
    assert read_rows(path) == ROWS
    assert path.read_text().endswith("\n")


def test_a_cut_first_line_leaves_an_empty_file_behind(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0])[:5])
    with pytest.warns(PartialRowWarning):
        append_row(path, ROWS[1])
    assert path.read_text() == json.dumps(ROWS[1]) + "\n"


def test_corruption_before_the_last_line_raises(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{broken\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_rows(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="line 1"):
        read_rows(path)


def test_append_refuses_what_is_not_one_json_object(tmp_path):
    path = tmp_path / "rows.jsonl"
    with pytest.raises(TypeError, match="dict"):
        append_row(path, [1, 2])
    with pytest.raises(TypeError):
        append_row(path, {"x": object()})
    assert read_rows(path) == []
