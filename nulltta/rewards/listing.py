"""The table printed by ``nulltta rewards``: every reward, what it needs, and whether it is here."""

from __future__ import annotations

import textwrap

from .registry import RewardSpec, reward_specs

__all__ = ["format_reward_table", "reward_rows"]


def reward_rows(specs: list[RewardSpec] | None = None) -> list[dict[str, str]]:
    """One row per registered reward: name, description, needs, status and where.

    Availability checks only look for files; nothing is loaded. A check that
    fails is reported in the row, not raised.

    Returns
    -------
    list of dict
        Keys ``name``, ``description``, ``needs``, ``status`` (``"found"``,
        ``"not found"`` or ``"error"``) and ``where``.
    """
    rows = []
    for spec in specs if specs is not None else reward_specs():
        try:
            found, where = spec.is_available()
            status = "found" if found else "not found"
        except Exception as err:  # a broken check must not hide the other rewards
            status, where = "error", f"{type(err).__name__}: {err}"
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "needs": spec.needs or "nothing",
                "status": status,
                "where": where,
            }
        )
    return rows


def format_reward_table(specs: list[RewardSpec] | None = None, width: int = 100) -> str:
    """Plain-text table of the rewards for ``nulltta rewards``.

    Parameters
    ----------
    specs : list of RewardSpec, optional
        Default: every registered reward.
    width : int, default=100
        Wrap the detail lines at this width.

    Returns
    -------
    str
        A header, one line per reward (name, status, description), and
        indented ``needs:`` and ``where:`` lines.
    """
    rows = reward_rows(specs)
    name_w = max([len("reward")] + [len(r["name"]) for r in rows])
    status_w = max(len("status"), *(len(r["status"]) for r in rows)) if rows else len("status")
    lines = [f"{'reward':<{name_w}}  {'status':<{status_w}}  description"]
    lines.append("-" * min(width, name_w + status_w + 40))
    indent = " " * (name_w + 2)
    for row in rows:
        head = f"{row['name']:<{name_w}}  {row['status']:<{status_w}}  "
        lines.extend(
            textwrap.wrap(
                row["description"],
                width=width,
                initial_indent=head,
                subsequent_indent=" " * len(head),
                break_on_hyphens=False,
            )
        )
        for label in ("needs", "where"):
            if label == "needs" and row["needs"] == "nothing":
                continue
            lines.extend(
                textwrap.wrap(
                    f"{label}: {row[label]}",
                    width=width,
                    initial_indent=indent,
                    subsequent_indent=indent + "  ",
                    break_on_hyphens=False,
                )
            )
    lines.append("")
    lines.append(
        "Weights are looked up in an explicit path, then $NULLTTA_WEIGHTS_DIR, then the "
        "Hugging Face cache (offline); nothing is downloaded."
    )
    return "\n".join(lines)
