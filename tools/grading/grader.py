"""Host side of trusted grading: build the harness program, run it in a sandbox, read the verdict strictly.

The program (``_codec.py`` + ``_harness.py`` + one call of ``grade`` with string literals) runs through
the ordinary :class:`~ponder.tools.executor.CodeExecutor` protocol, so every sandbox kind can grade. Its
last expression is the verdict: ``ponder-grade:<marker>:<P/F per test>:<calls>:<details>`` (the hex of
each test's UTF-8 detail, dot-separated),
which only the trusted side of the harness can produce (the candidate runs in another process without
the sandbox's result channel). The host accepts exactly that form with its own random marker and the
right number of tests; anything else (a kill, an error, a missing or malformed value) fails every test.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.tools.grading.source import SourceError, keep_definitions

if TYPE_CHECKING:
    from ponder.tools.executor import CodeExecutor, ExecResult

_HERE = Path(__file__).parent
_VERDICT = re.compile(r"'ponder-grade:([0-9a-f]{32}):([PF]*):([0-9]{1,9}):([0-9a-f.]*)'")


@dataclass(frozen=True)
class TestOutcome:
    """One test's result: passed or not, and why not (a traceback of the test, or a disqualification)."""

    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class GradeReport:
    """The verdict on one candidate.

    Attributes:
        outcomes: One per test, in order.
        calls: Calls the tests made to the candidate's functions.
        result: What the sandbox reported for the harness run (``None`` when nothing ran).
        error: Why there is no verdict from the harness (the candidate did not parse, the run was
            killed, the value was missing or malformed); ``None`` when there is one.
    """

    outcomes: tuple[TestOutcome, ...]
    calls: int = 0
    result: ExecResult | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        """True when there are tests and every one passed."""
        return self.error is None and bool(self.outcomes) and all(o.passed for o in self.outcomes)

    @property
    def signature(self) -> str:
        """``P`` or ``F`` per test."""
        return "".join("P" if o.passed else "F" for o in self.outcomes)

    @property
    def kill_reason(self) -> str | None:
        """The sandbox's kill reason (``timeout``, ``memory``...), if it killed the run."""
        return self.result.kill_reason if self.result is not None and self.result.killed else None

    def summary(self, limit: int = 1500) -> str:
        """Why the candidate failed (the first failing test's detail), or ``passed``."""
        if self.passed:
            return "passed"
        if self.error is not None:
            text = self.error
        else:
            text = next((o.detail for o in self.outcomes if not o.passed and o.detail), "failed")
        return text if len(text) <= limit else text[:limit] + " ...[truncated]"


@functools.cache
def _part(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


def build_program(marker: str, candidate: str, tests: Sequence[str], setup: str = "",
                  exports: Sequence[str] = (), limit: int = 4000) -> str:
    """The harness program for one candidate (its last expression is the verdict).

    Args:
        marker: 32 hex digits, fresh per run, echoed in the verdict.
        candidate: The candidate's kept definitions (:func:`keep_definitions`).
        tests: Test snippets (each one verdict letter).
        setup: Trusted code run before each test.
        exports: The candidate's function names the tests use (empty: all of them).
        limit: Most characters of the verdict's ``repr``.
    """
    codec = _part("_codec.py")
    runner = codec + "\n" + _part("_candidate.py")
    call = (f"grade({marker!r}, {runner!r}, {candidate!r}, {setup!r}, {list(tests)!r}, {list(exports)!r}, "
            f"{int(limit) - 2})")
    return f"{codec}\n{_part('_harness.py')}\n{call}\n"


def parse_verdict(value: str | None, marker: str, count: int) -> tuple[tuple[TestOutcome, ...], int] | None:
    """``(outcomes, calls)`` from the harness's value, or ``None`` for anything but a well-formed verdict."""
    match = _VERDICT.fullmatch(value or "")
    if match is None or not hmac.compare_digest(match.group(1), marker) or len(match.group(2)) != count:
        return None
    parts = match.group(4).split(".")
    if len(parts) != count or any(len(p) % 2 for p in parts):
        return None
    details = [bytes.fromhex(p).decode("utf-8", "replace") for p in parts]
    outcomes = tuple(TestOutcome(letter == "P", "" if letter == "P" else detail)
                     for letter, detail in zip(match.group(2), details, strict=True))
    return outcomes, int(match.group(3))


def _failed(count: int, error: str, result: ExecResult | None = None) -> GradeReport:
    return GradeReport(tuple(TestOutcome(False, error) for _ in range(count)), 0, result, error)


def grade(executor: CodeExecutor, program: str, tests: Sequence[str], setup: str = "",
          exports: Sequence[str] = ()) -> GradeReport:
    """Grade the candidate ``program`` against ``tests`` in ``executor`` (one run; the caller closes it).

    Only the definitions of ``program`` are kept (:func:`keep_definitions`). Each test runs on the
    trusted side with a fresh candidate process; see :mod:`ponder.tools.grading`. ``executor`` should
    be fresh, or have run only trusted code: in a session sandbox, earlier runs may share the harness's
    interpreter (and could have patched its builtins) unless the sandbox runs each cell in a child.

    Args:
        executor: Where the harness runs (any :class:`~ponder.tools.executor.CodeExecutor`).
        program: The candidate's source (only its definitions are kept).
        tests: Test snippets, one verdict each, run on the trusted side after ``setup``.
        setup: Trusted code run before each test (e.g. the dataset's ``check`` function).
        exports: The candidate's names the tests may call; empty: every callable it defines whose
            name is not a builtin's or a dunder.

    Raises:
        ValueError: when there are no tests.
        SandboxError: when the sandbox cannot run anything at all.
    """
    if not tests:
        raise ValueError("grading needs at least one test")
    try:
        candidate = keep_definitions(program)
    except SourceError as exc:
        return _failed(len(tests), str(exc))
    marker = secrets.token_hex(16)
    limit = executor.output_chars
    result = executor.run(build_program(marker, candidate, tests, setup, exports, limit))
    if result.killed:
        return _failed(len(tests), result.summary(500), result)
    if result.error_type is not None:
        return _failed(len(tests), f"the grader failed: {result.summary(500)}", result)
    parsed = parse_verdict(result.value, marker, len(tests))
    if parsed is None:
        return _failed(len(tests), "the grader gave no verdict", result)
    outcomes, calls = parsed
    return GradeReport(outcomes, calls, result)
