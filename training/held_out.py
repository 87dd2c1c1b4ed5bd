"""The held-out guard: evaluation tasks that must never become training data.

Tasks match on their id or on their normalized question text (lower case, single spaces). Files named with
``--held-out`` are strict: an export that would keep one of their tasks is refused unless ``--drop-held-out``.
The shipped evaluation files (GSM8K dev, SVAMP, HotpotQA, MuSiQue; :func:`shipped_eval_files`) are always checked
unless turned off, and their tasks are dropped and counted rather than refused: protection by default, without a
surprising failure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ponder.core.settings import Settings


def question_key(text: str) -> str:
    """A question as compared across files: lower case, whitespace collapsed."""
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class TaskKey:
    """A held-out task an episode matched: its id (or question) and the file it is in."""

    label: str
    file: Path
    strict: bool


@dataclass
class HeldOut:
    """The held-out tasks by id and by normalized question.

    Attributes:
        drop: Drop strict matches instead of refusing the export.
        files: The files read, with whether they are strict.
    """

    drop: bool = False
    files: list[tuple[Path, bool]] = field(default_factory=list)
    _ids: dict[str, TaskKey] = field(default_factory=dict)
    _questions: dict[str, TaskKey] = field(default_factory=dict)

    def add_file(self, path: Path, strict: bool) -> int:
        """Read the tasks of an evaluation JSONL file (rows with ``id`` and/or ``question``); returns how many.

        Raises:
            DataError: for a missing file or a line that is not a JSON object.
        """
        count = 0
        for _, row in read_rows(path, "held-out"):
            label = str(row.get("id") or row.get("question", ""))[:80]
            key = TaskKey(label, path, strict)
            if row.get("id") is not None:
                self._ids.setdefault(str(row["id"]), key)
            if isinstance(row.get("question"), str):
                self._questions.setdefault(question_key(row["question"]), key)
            count += 1
        self.files.append((path, strict))
        return count

    def match(self, task_id: str | None, question: str) -> TaskKey | None:
        """The held-out task ``(task_id, question)`` is, or ``None``; a strict file's match comes first."""
        hits = [k for k in (self._ids.get(task_id) if task_id else None,
                            self._questions.get(question_key(question))) if k is not None]
        return next((k for k in hits if k.strict), hits[0] if hits else None)


def read_rows(path: Path, what: str) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` of a JSONL file of task rows (``what`` names it in errors).

    Raises:
        DataError: for a missing file; :class:`~ponder.core.errors.BadLinesError` for lines that are not JSON
            objects.
    """
    from ponder.core.datafiles import read_jsonl_file

    return iter(read_jsonl_file(path, _json_object, what=what).rows)


def _json_object(value: object) -> dict:
    if not isinstance(value, dict):
        raise ValueError("not a JSON object (JSONL rows: one object per line)")
    return value


def shipped_eval_files(settings: Settings) -> list[Path]:
    """The evaluation files shipped in ``settings.data_dir`` that exist."""
    from ponder.envs.qa import gsm8k_suite, hotpotqa_suite, musique_suite, svamp_suite

    suites = (gsm8k_suite(), svamp_suite(), hotpotqa_suite(), musique_suite())
    paths = [Path(settings.data_dir) / suite.data_file for suite in suites]
    return [p for p in paths if p.is_file()]


def build_held_out(strict: Sequence[Path], settings: Settings, *, drop: bool, shipped: bool) -> HeldOut:
    """The guard: ``strict`` files (refuse, or drop with ``drop``) and, with ``shipped``, the shipped eval files."""
    guard = HeldOut(drop=drop)
    for path in strict:
        guard.add_file(Path(path), strict=True)
    if shipped:
        for path in shipped_eval_files(settings):
            if all(path.resolve() != p.resolve() for p, _ in guard.files):
                guard.add_file(path, strict=False)
    return guard
