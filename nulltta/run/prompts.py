"""Reading a prompts file, and checking its prompts against the model.

A prompts file has one prompt per line. Blank lines and lines whose first
non-blank character is ``#`` are skipped; leading and trailing spaces are
removed; a prompt that appears again is dropped (the same prompt with the
same seed would give the same image twice). :class:`PromptSet` keeps what
was skipped, so the run can report it.

A prompt longer than the text encoder takes would be cut silently by the
pipeline; :func:`check_prompts_for_model` refuses such prompts unless the
user allows truncation, and applies the model's own prompt check
(:meth:`nulltta.profiles.ModelProfile.validate_prompt`) to every prompt before
any image is made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import RunError

__all__ = ["PromptSet", "check_prompts_for_model", "read_prompts"]

# The text encoders whose cut-off the adapters warn about (SD3's T5 has its own
# max_sequence_length and is not checked here).
_TOKENIZERS = ("tokenizer", "tokenizer_2")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


@dataclass
class PromptSet:
    """The prompts of a prompts file, in file order, each once.

    Attributes
    ----------
    prompts : list of str
        The distinct prompts.
    lines : list of int
        The line (1-based) each prompt was read from.
    blank_lines : int
        Blank lines skipped.
    comment_lines : int
        ``#`` lines skipped.
    duplicates : list of [int, int]
        ``[line, first_line]`` of every repeated prompt that was dropped.

    """

    prompts: list[str]
    lines: list[int]
    blank_lines: int = 0
    comment_lines: int = 0
    duplicates: list[list[int]] = field(default_factory=list)

    def report(self) -> str:
        """One line for the log: what was read and what was skipped."""
        parts = [_count(len(self.prompts), "prompt")]
        if self.blank_lines:
            parts.append(_count(self.blank_lines, "blank line") + " skipped")
        if self.comment_lines:
            parts.append(_count(self.comment_lines, "comment line") + " skipped")
        if self.duplicates:
            shown = ", ".join(f"line {line} = line {first}" for line, first in self.duplicates[:5])
            more = ", ..." if len(self.duplicates) > 5 else ""
            parts.append(_count(len(self.duplicates), "duplicate") + f" dropped ({shown}{more})")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return asdict(self)


def read_prompts(path: str | Path) -> PromptSet:
    """Read a prompts file (see the module docstring for its format).

    Raises
    ------
    RunError
        When the file cannot be read, is not UTF-8, or holds no prompt.

    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunError(
            f"no prompts file at {path}; pass --prompts FILE, one prompt a line"
        ) from None
    except UnicodeDecodeError as error:
        raise RunError(f"{path} is not UTF-8 text ({error.reason}); save it as UTF-8") from None
    except OSError as error:
        raise RunError(f"cannot read the prompts file {path}: {error.strerror}") from None
    result = PromptSet(prompts=[], lines=[])
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        prompt = raw.strip()
        if not prompt:
            result.blank_lines += 1
        elif prompt.startswith("#"):
            result.comment_lines += 1
        elif prompt in first_line:
            result.duplicates.append([number, first_line[prompt]])
        else:
            first_line[prompt] = number
            result.prompts.append(prompt)
            result.lines.append(number)
    if not result.prompts:
        raise RunError(
            f"{path} holds no prompt ({result.report()}); write one prompt a line "
            "(lines starting with # are comments)"
        )
    return result


def _too_long(pipeline: Any, prompt: str) -> tuple[int, int] | None:
    """``(tokens, limit)`` when a text encoder of ``pipeline`` would cut ``prompt``."""
    for name in _TOKENIZERS:
        tokenizer = getattr(pipeline, name, None)
        if tokenizer is None:
            continue
        tokens = len(tokenizer(prompt, truncation=False).input_ids)
        if tokens > tokenizer.model_max_length:
            return tokens, tokenizer.model_max_length
    return None


def check_prompts_for_model(
    prompt_set: PromptSet, pipeline: Any, profile: Any, allow_truncation: bool = False
) -> set[int]:
    """Check every prompt against the model before any image is made.

    Parameters
    ----------
    prompt_set : PromptSet
    pipeline : diffusers pipeline
        Its tokenizers give the text encoders' lengths.
    profile : ModelProfile
        Its ``validate_prompt`` is the model's own prompt check.
    allow_truncation : bool, default=False
        Align over-long prompts anyway (the text encoder sees their first tokens).

    Returns
    -------
    set of int
        Indices (in ``prompt_set.prompts``) of the prompts that will be truncated.

    Raises
    ------
    RunError
        Listing every prompt the model cannot take, with its line.

    """
    problems: list[str] = []
    truncated: set[int] = set()
    for index, (prompt, line) in enumerate(zip(prompt_set.prompts, prompt_set.lines, strict=True)):
        try:
            profile.validate_prompt(prompt)
        except ValueError as error:
            problems.append(f"line {line}: {error}")
            continue
        length = _too_long(pipeline, prompt)
        if length is not None:
            truncated.add(index)
            if not allow_truncation:
                problems.append(
                    f"line {line}: {length[0]} tokens, but the text encoder takes {length[1]}"
                )
    if problems:
        listed = "\n  ".join(problems)
        hint = (
            "shorten the over-long prompts, or pass --allow-truncation to align them cut to "
            "the text encoder's length (as diffusers does)"
            if truncated and not allow_truncation
            else "fix or remove these prompts"
        )
        raise RunError(
            f"{len(problems)} prompt(s) cannot be aligned by this model:\n  {listed}\n{hint}"
        )
    return truncated
