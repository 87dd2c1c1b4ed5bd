"""Answer extraction and normalization for votes: two answers that mean the same get the same key.

Built-in kinds (pluggable: :func:`register_normalizer`):

- ``number``: the last number, canonical (``1,000`` = ``1000``, ``3.0`` = ``3``, ``3/4`` = ``0.75``, units dropped);
- ``text``: SQuAD normalization (lower case, no punctuation or articles, single spaces);
- ``choice``: a multiple-choice letter (``(B)``, ``B)``, ``answer: b``, or the text of one of the options);
- ``code``: a program; with tests, its key is which tests it passes (programs that behave alike vote
  together), graded in the sandbox by :mod:`ponder.tools.grading` (only the program's definitions are
  kept; each test runs on the trusted side and calls them through proxies that pass plain values, so an
  exit, an always-equal object or a patched builtin cannot turn a failing test into a pass); without
  tests, its canonical source (``ast`` round trip: formatting and comments do not matter);
- ``auto``: ``number`` when the answer is just a number, else ``text``.

A normalizer returns ``None`` when the answer is unusable (no number, empty): that sample abstains.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ponder.core.answers import is_numeric, normalize_number, normalize_text
from ponder.core.errors import ConfigError
from ponder.tools.grading import grade

if TYPE_CHECKING:
    from ponder.tools.executor import CodeExecutor


@dataclass
class NormalizeContext:
    """What a normalizer may need besides the answer.

    Attributes:
        choices: Multiple-choice options in order (option ``A`` first), when known.
        tests: Test snippets for code answers (one verdict letter each; e.g. an ``assert`` calling the
            program's functions, which the trusted grader binds to the candidate's).
        executor_factory: Opens a sandbox for running code (required when ``tests`` are given).
        cache: Keys already computed, by answer text (so equal programs run once).
    """

    choices: Sequence[str] = ()
    tests: Sequence[str] = ()
    executor_factory: Callable[[], CodeExecutor] | None = None
    cache: dict[str, str | None] = field(default_factory=dict)


Normalizer = Callable[[str, NormalizeContext], "str | None"]

_LETTER = re.compile(
    r"(?:^|answer\s*(?:is|:)?\s*|option\s*|\()\(?([A-Ja-j])(?:\)|\.|:|\s|$)", re.IGNORECASE
)
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


def normalize_number_key(answer: str, ctx: NormalizeContext) -> str | None:
    """The canonical last number, or ``None``."""
    return normalize_number(answer)


def normalize_text_key(answer: str, ctx: NormalizeContext) -> str | None:
    """SQuAD-normalized text, or ``None`` when nothing is left."""
    return normalize_text(answer) or None


def normalize_auto_key(answer: str, ctx: NormalizeContext) -> str | None:
    """``number`` for numeric answers (``$1,200``, ``3/4``), ``text`` otherwise."""
    stripped = answer.strip().rstrip(".")
    if is_numeric(stripped):
        return normalize_number(stripped)
    return normalize_text_key(answer, ctx)


def normalize_choice_key(answer: str, ctx: NormalizeContext) -> str | None:
    """An upper-case option letter, from a letter or from an option's text."""
    text = answer.strip()
    if ctx.choices:
        wanted = normalize_text(text)
        for i, option in enumerate(ctx.choices):
            if wanted and wanted == normalize_text(option):
                return chr(ord("A") + i)
    match = _LETTER.search(text)
    if not match:
        return None
    letter = match.group(1).upper()
    if ctx.choices and ord(letter) - ord("A") >= len(ctx.choices):
        return None
    return letter


def extract_code(answer: str) -> str:
    """The program in an answer: the last fenced block, else the whole text."""
    blocks = _FENCE.findall(answer)
    return (blocks[-1] if blocks else answer).strip()


def canonical_code(code: str) -> str | None:
    """Source after an ``ast`` round trip (formatting and comments dropped); ``None`` when it does not parse."""
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError):
        return None


def normalize_code_key(answer: str, ctx: NormalizeContext) -> str | None:
    """``tests:PPF...`` (trusted pass/fail per test) with tests, else ``src:<hash of the canonical source>``."""
    code = extract_code(answer)
    canonical = canonical_code(code)
    if canonical is None or not canonical.strip():
        return None
    if not ctx.tests:
        return "src:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
    if canonical in ctx.cache:
        return ctx.cache[canonical]
    if ctx.executor_factory is None:
        raise ConfigError("code answers with tests need a sandbox (NormalizeContext.executor_factory)")
    executor = ctx.executor_factory()
    try:
        report = grade(executor, code, ctx.tests)  # one run, a fresh candidate process per test
        signature = report.signature
        if report.kill_reason is not None and len(ctx.tests) > 1:  # one test hung: each gets its own run
            signature = "".join(grade(executor, code, [test]).signature for test in ctx.tests)
    finally:
        executor.close()
    key = "tests:" + signature
    ctx.cache[canonical] = key
    return key


NORMALIZERS: dict[str, Normalizer] = {
    "auto": normalize_auto_key,
    "number": normalize_number_key,
    "text": normalize_text_key,
    "choice": normalize_choice_key,
    "code": normalize_code_key,
}


def register_normalizer(kind: str, fn: Normalizer) -> None:
    """Add (or replace) the normalizer for answers of ``kind``."""
    NORMALIZERS[kind] = fn


def answer_key(answer: str | None, kind: str = "auto", ctx: NormalizeContext | None = None) -> str | None:
    """The vote key of ``answer`` (``None``: the sample abstains).

    Raises:
        ConfigError: for an unknown kind.
    """
    fn = NORMALIZERS.get(kind)
    if fn is None:
        raise ConfigError(f"unknown answer kind {kind!r}; choose one of: {', '.join(NORMALIZERS)}")
    if answer is None or not answer.strip():
        return None
    return fn(answer, ctx or NormalizeContext())
