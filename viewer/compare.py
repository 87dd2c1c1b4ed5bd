"""Two runs side by side: their episodes paired by id, each pair classified (fixed, broken, same, only one side)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ponder.viewer.catalog import RunEntry
from ponder.viewer.rows import EpisodeRow

Change = Literal["fixed", "broken", "same_success", "same_failure", "only_a", "only_b"]
#: Every change, in the order the compare page lists them.
CHANGES: tuple[Change, ...] = ("fixed", "broken", "same_success", "same_failure", "only_a", "only_b")


@dataclass
class Pair:
    """One episode in run A and/or run B.

    Attributes:
        id: What pairs the rows: the episode id when both runs are evals, else the task text (a ``runs``
            folder's rows are trajectories, whose ids never repeat across runs).
        task: The task.
        a: The row in run A (``None``: only in B).
        b: The row in run B (``None``: only in A).
        change: ``fixed`` (failed in A, succeeded in B), ``broken`` (the reverse), ``same_success``,
            ``same_failure``, ``only_a`` or ``only_b``.
    """

    id: str
    task: str
    a: EpisodeRow | None
    b: EpisodeRow | None
    change: Change


def succeeded(row: EpisodeRow) -> bool:
    """An eval row's success; a runs row (correctness unknown) counts as a success when it solved."""
    return row.success if row.success is not None else row.status == "solved"


def _keyed(entry: RunEntry, by_task: bool) -> dict[str, EpisodeRow]:
    """The good rows of a run by pairing key, the id or the task (the first row of a repeated key wins)."""
    out: dict[str, EpisodeRow] = {}
    for row in list(entry.rows):
        if row.problem is None:
            out.setdefault(row.task if by_task else row.id, row)
    return out


def classify(a: EpisodeRow | None, b: EpisodeRow | None) -> Change:
    """The change from ``a`` to ``b``."""
    if b is None:
        return "only_a"
    if a is None:
        return "only_b"
    won_a, won_b = succeeded(a), succeeded(b)
    if won_a == won_b:
        return "same_success" if won_a else "same_failure"
    return "fixed" if won_b else "broken"


def compare_runs(a: RunEntry, b: RunEntry) -> tuple[list[Pair], dict[str, int]]:
    """Pair the episodes of runs ``a`` and ``b`` (rows with a problem left out).

    Returns:
        The pairs (A's order, then the episodes only B has, in B's order) and how many pairs have each change
        (every change of :data:`CHANGES` present, zeros included).
    """
    by_task = a.kind != "eval" or b.kind != "eval"
    rows_a, rows_b = _keyed(a, by_task), _keyed(b, by_task)
    pairs: list[Pair] = []
    keys: Iterable[str] = [*rows_a, *(k for k in rows_b if k not in rows_a)]
    for key in keys:
        row_a, row_b = rows_a.get(key), rows_b.get(key)
        shown = row_a or row_b
        pairs.append(Pair(id=key, task=shown.task if shown else "", a=row_a, b=row_b, change=classify(row_a, row_b)))
    counts = dict.fromkeys(CHANGES, 0)
    for pair in pairs:
        counts[pair.change] += 1
    return pairs, counts
