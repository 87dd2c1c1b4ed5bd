"""Reading the files a user hands in: memory imports, ``--data`` sets, search corpora, suite and script files.

One rule for all of them: nothing is skipped silently. Every line that cannot be read (not UTF-8, not
JSON, not a valid row, a duplicate id) is reported as ``file:line: reason``, and

* a missing, empty or blank file, or one where no line is valid, is always an error;
* a file with some bad lines is refused as a whole by default (:class:`~ponder.core.errors.BadLinesError`,
  exit code 2 in the CLI): a run or an import never goes ahead on part of what the user meant, and
  nothing is written before the file is known to be good;
* a caller that offers ``skip_bad_lines`` (``ponder memory import --skip-bad-lines``) gets the good rows
  and the skipped lines, and must show the skipped lines to the user.

Ponder's own append-only records (``trajectories.jsonl``, ``results.jsonl``) are read by
:func:`ponder.core.io.read_jsonl` instead: there a torn last line is what a crash leaves, not a user's
mistake, and it is cut off quietly.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from ponder.core.errors import BadLinesError, DataError, PonderError

T = TypeVar("T")

__all__ = ["Rows", "describe_validation", "read_json_file", "read_jsonl_file"]


@dataclass
class Rows(Generic[T]):
    """What :func:`read_jsonl_file` read.

    Attributes:
        path: The file.
        rows: ``(line number, value)`` of every valid line, in file order.
        skipped: The bad lines that ``skip_bad_lines`` let through, as ``file:line: reason``.
        sha256: Hash of the file's bytes (for caches keyed by content).
    """

    path: Path
    rows: list[tuple[int, T]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    sha256: str = ""

    def values(self) -> list[T]:
        """The valid rows without their line numbers."""
        return [value for _, value in self.rows]


def describe_validation(exc: ValidationError) -> str:
    """A pydantic error as ``field: message; field: message`` (``row`` for the whole object)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())


def _read_bytes(path: Path, what: str, missing: type[PonderError]) -> bytes:
    if not path.exists():
        raise missing(f"{what} file not found: {path}")
    if not path.is_file():
        raise DataError(f"{what} file {path} is not a regular file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise DataError(f"{what} file {path} is empty")
    return raw


def _parse_line(raw: bytes, parse: Callable[[Any], T]) -> T:
    """One line's value, or ``ValueError`` with the reason it cannot be read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}: column {exc.colno})") from None
    try:
        return parse(obj)
    except ValidationError as exc:
        raise ValueError(f"bad row: {describe_validation(exc)}") from None


def read_jsonl_file(
    path: str | Path,
    parse: Callable[[Any], T],
    *,
    what: str = "data",
    key: Callable[[T], Hashable] | None = None,
    limit: int | None = None,
    skip_bad_lines: bool = False,
    hint: str = "",
    missing: type[PonderError] = DataError,
) -> Rows[T]:
    """Read a user's JSONL file: one JSON value per line, blank lines ignored, every bad line reported.

    Args:
        path: The file (``~`` is expanded).
        parse: Turns one decoded JSON value into a row; raises ``ValueError`` (pydantic's
            ``ValidationError`` included) whose message is the line's reason.
        what: What the file holds, for messages (``memory``, ``search corpus``, ...).
        key: A row's identity: a second row with the same key is a bad line (``duplicate id``).
        limit: Stop reading after this many valid rows (the lines after them are not read).
        skip_bad_lines: Return the good rows and the bad lines instead of refusing the file.
        hint: Ends the error when some lines are good and some bad (what happened, how to skip the bad ones).
        missing: The error raised for a missing file.

    Returns:
        The valid rows with their line numbers, the skipped lines and the file hash.

    Raises:
        PonderError: ``missing`` when the file does not exist.
        DataError: when the file cannot be read or is empty or blank.
        BadLinesError: listing every bad line, when some line is bad (unless ``skip_bad_lines``) or when
            no line is valid.
    """
    p = Path(path).expanduser()
    raw = _read_bytes(p, what, missing)
    out: Rows[T] = Rows(path=p, sha256=hashlib.sha256(raw).hexdigest())
    bad: list[tuple[int, str]] = []
    seen: dict[Hashable, int] = {}
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        if limit is not None and len(out.rows) >= limit:
            break
        if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
            line = line[3:]
        if not line.strip():
            continue
        try:
            value = _parse_line(line, parse)
        except ValueError as exc:
            bad.append((lineno, str(exc)))
            continue
        ident = key(value) if key else None
        if ident is not None and ident in seen:
            bad.append((lineno, f"duplicate id {ident!r} (first on line {seen[ident]})"))
            continue
        if ident is not None:
            seen[ident] = lineno
        out.rows.append((lineno, value))
    _check(p, what, bad, len(out.rows), skip_bad_lines, hint)
    out.skipped = [f"{p}:{lineno}: {reason}" for lineno, reason in bad]
    return out


def _check(path: Path, what: str, bad: list[tuple[int, str]], good: int, skip: bool, hint: str) -> None:
    """Raise for a file with no valid line, or with bad lines when they may not be skipped."""
    if not bad and good:
        return
    if not bad:
        raise DataError(f"{what} file {path} is empty")
    lines = "line" if len(bad) == 1 else "lines"
    if not good:
        raise BadLinesError(path, f"{path}: no valid {what} line ({len(bad)} bad {lines})", bad)
    if not skip:
        then = hint or "the file was refused; fix the lines listed"
        raise BadLinesError(path, f"{path}: {len(bad)} bad {lines} and {good} good: {then}", bad)


def read_json_file(path: str | Path, *, what: str = "data", missing: type[PonderError] = DataError) -> Any:
    """Read a user's (whole-file) JSON document, e.g. a suite file.

    Raises:
        PonderError: ``missing`` when the file does not exist.
        DataError: when it cannot be read or is empty, or ``file:line: reason`` for text that is not
            UTF-8 or not JSON.
    """
    p = Path(path).expanduser()
    raw = _read_bytes(p, what, missing)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(f"{p}:{line}: not valid UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg}: column {exc.colno})") from None
