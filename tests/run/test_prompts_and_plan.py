"""The prompts file and the work plan: no model needed."""

from __future__ import annotations

import pytest

from nulltta.run.errors import RunError
from nulltta.run.plan import make_plan, share_of
from nulltta.run.prompts import read_prompts


def test_blank_lines_comments_and_duplicates_are_skipped_and_reported(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text(
        "# set A\n  a red circle  \n\n\t\na blue square\n  # indented comment\na red circle\n"
    )
    prompts = read_prompts(path)
    assert prompts.prompts == ["a red circle", "a blue square"]
    assert prompts.lines == [2, 5]
    assert (prompts.blank_lines, prompts.comment_lines) == (2, 2)
    assert prompts.duplicates == [[7, 2]]
    assert prompts.report() == (
        "2 prompts; 2 blank lines skipped; 2 comment lines skipped; "
        "1 duplicate dropped (line 7 = line 2)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [("\n# only comments\n\n", "holds no prompt"), (b"\xff\xfe a cat", "not UTF-8")],
)
def test_a_prompts_file_without_prompts_is_refused(tmp_path, text, message):
    path = tmp_path / "prompts.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(RunError, match=message):
        read_prompts(path)


def test_a_missing_prompts_file_is_named(tmp_path):
    with pytest.raises(RunError, match=r"no prompts file at .*absent.txt"):
        read_prompts(tmp_path / "absent.txt")


def test_batches_do_not_depend_on_the_number_of_processes():
    prompts = [f"prompt {i}" for i in range(5)]
    plan = make_plan(prompts, [0, 1, 2], batch_size=4)
    pairs = [(item.prompt, item.seed) for batch in plan for item in batch.items]
    assert pairs == [(p, s) for p in prompts for s in (0, 1, 2)]  # prompt-major
    assert [len(batch.items) for batch in plan] == [4, 4, 4, 3]
    for world_size in (1, 2, 3, 7):
        shares = [share_of(plan, rank, world_size) for rank in range(world_size)]
        dealt = sorted((b for share in shares for b in share), key=lambda b: b.index)
        assert dealt == plan  # every batch exactly once, with the same items
    assert plan[1].items[0].key == "p0001-s1" and plan[1].items[0].file == "images/p0001-s1.png"


def test_repeated_seeds_and_empty_batches_are_refused():
    with pytest.raises(RunError, match="repeats a seed"):
        make_plan(["a cat"], [0, 1, 0], 2)
    with pytest.raises(RunError, match="at least 1"):
        make_plan(["a cat"], [0], 0)
