"""Incremental, paged access to an append-only JSONL file: a byte-offset index of its lines, never the whole file.

:class:`JsonlFile` keeps one :class:`LineRef` per non-blank line (its number, byte offset, length and whether it
is a JSON object). :meth:`JsonlFile.refresh` reads only the bytes appended since the last refresh, in blocks of
:data:`BLOCK` bytes; a file that shrank or was replaced (another inode) is indexed again from its start. The last
line of a file without its newline is either still being written or was cut by a crash: it is ``torn`` when it is
not JSON, and it is looked at again on the next refresh (the writer may have finished it). Lines are read back one
at a time by seeking to their offset.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

#: Bytes read per block while indexing.
BLOCK = 1 << 20
#: Characters of a bad line kept in a :class:`LineProblem`.
EXCERPT = 300

LineState = Literal["ok", "malformed", "torn"]


@dataclass(frozen=True)
class LineRef:
    """Where one line of a JSONL file is and whether it holds a JSON object.

    Attributes:
        number: The 1-based line number in the file (blank lines count but get no ref).
        offset: The byte offset of the line's start.
        length: Its length in bytes, without the newline.
        state: ``ok`` (a JSON object), ``malformed`` (not JSON, or JSON but not an object) or ``torn`` (the last
            line, without its newline, not JSON: being written, or cut by a crash).
        error: Why the line is malformed or torn; ``None`` when ok.
    """

    number: int
    offset: int
    length: int
    state: LineState
    error: str | None = None


class LineProblem(Exception):
    """A line that holds no JSON object (malformed or torn).

    Attributes:
        ref: The line.
        excerpt: The start of its text.
    """

    def __init__(self, ref: LineRef, excerpt: str) -> None:
        self.ref = ref
        self.excerpt = excerpt
        super().__init__(f"line {ref.number}: {ref.state}: {ref.error}")


def parse_line(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON object of one line's bytes, or ``(None, reason)`` when it is not one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start + 1})"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not JSON: {exc.msg} (col {exc.colno})"
    except ValueError as exc:  # e.g. integers too long to convert
        return None, f"not JSON: {exc}"
    if not isinstance(obj, dict):
        return None, f"not an object (a JSON {type(obj).__name__})"
    return obj, None


class JsonlFile:
    """An incrementally indexed JSONL file (thread-safe).

    Attributes:
        path: The file.
        generation: Bumped whenever the index starts over (the file shrank, was replaced or deleted); a reader
            that keeps state per line starts over too when it changes.
        bytes_read: Bytes read while indexing, over the object's life (what :meth:`refresh` cost).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.generation = 0
        self.bytes_read = 0
        self._lock = threading.RLock()
        self._lines: list[LineRef] = []
        self._by_number: dict[int, int] = {}
        self._end = 0  # bytes indexed: just after the last newline
        self._newlines = 0  # newlines before _end
        self._tail = False  # the last ref has no newline (looked at again next time)
        self._identity: tuple[int, int] | None = None
        self._size = 0
        self.mtime: float | None = None

    def refresh(self) -> int:
        """Index the bytes added since the last refresh.

        Returns:
            How many lines were added (after a restart from 0: every line; an unfinished last line that got
            finished is not a new line).
        """
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError:
                if self._lines or self._identity is not None:
                    self._reset()
                    self._identity = None
                self.mtime = None
                return 0
            identity = (st.st_dev, st.st_ino)
            if identity != self._identity or st.st_size < self._end:
                if self._identity is not None:
                    self._reset()
                self._identity = identity
            self.mtime = st.st_mtime
            if st.st_size == self._size and not self._tail:
                return 0
            before = len(self._lines)
            if self._tail:  # the unfinished last line: read it again from its start
                ref = self._lines.pop()
                del self._by_number[ref.number]
            try:
                with open(self.path, "rb") as fh:
                    self._index_from(fh)
            except OSError:
                return 0
            return max(0, len(self._lines) - before)

    def _reset(self) -> None:
        self._lines, self._by_number = [], {}
        self._end = self._newlines = self._size = 0
        self._tail = False
        self.generation += 1

    def _index_from(self, fh: BinaryIO) -> None:
        """Index from ``self._end`` to the end of the file, one block at a time."""
        fh.seek(self._end)
        pos = start = self._end
        pending = bytearray()
        while block := fh.read(BLOCK):
            self.bytes_read += len(block)
            cut = 0
            while (nl := block.find(b"\n", cut)) >= 0:
                pending += block[cut:nl]
                self._add(start, bytes(pending), terminated=True)
                pending.clear()
                start, cut = pos + nl + 1, nl + 1
            pending += block[cut:]
            pos += len(block)
        self._end, self._size = start, pos
        self._tail = False
        if pending:
            self._add(start, bytes(pending), terminated=False)

    def _add(self, offset: int, data: bytes, *, terminated: bool) -> None:
        number = self._newlines + 1
        if terminated:
            self._newlines += 1
        if not data.strip():
            return
        obj, error = parse_line(data)
        state: LineState = "ok"
        if obj is None:
            state = "torn" if not terminated and error and not error.startswith("not an object") else "malformed"
        self._by_number[number] = len(self._lines)
        self._lines.append(LineRef(number, offset, len(data), state, error))
        self._tail = not terminated

    @property
    def lines(self) -> list[LineRef]:
        """Every indexed (non-blank) line, in file order (a copy)."""
        with self._lock:
            return list(self._lines)

    @property
    def complete(self) -> int:
        """How many of :attr:`lines` end with a newline (all but an unfinished last line): they will not change."""
        with self._lock:
            return len(self._lines) - (1 if self._tail else 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)

    def ref(self, number: int) -> LineRef:
        """The line numbered ``number``.

        Raises:
            KeyError: when there is no such (non-blank, indexed) line.
        """
        with self._lock:
            index = self._by_number.get(number)
            if index is None:
                raise KeyError(number)
            return self._lines[index]

    def _bytes(self, ref: LineRef, limit: int | None = None) -> bytes:
        size = ref.length if limit is None else min(ref.length, limit)
        with open(self.path, "rb") as fh:
            fh.seek(ref.offset)
            return fh.read(size)

    def read(self, number: int) -> dict[str, Any]:
        """The JSON object of line ``number`` (one seek and one read).

        Raises:
            KeyError: when there is no such line.
            LineProblem: when the line is malformed or torn (or changed on disk since it was indexed).
        """
        ref = self.ref(number)
        try:
            data = self._bytes(ref)
        except OSError as exc:
            raise LineProblem(ref, f"cannot read {self.path}: {exc.strerror or exc}") from None
        if ref.state != "ok":
            raise LineProblem(ref, data[:EXCERPT * 4].decode("utf-8", errors="replace")[:EXCERPT])
        obj, error = parse_line(data)
        if obj is None:
            changed = LineRef(ref.number, ref.offset, ref.length, "malformed", f"changed on disk: {error}")
            raise LineProblem(changed, data[:EXCERPT * 4].decode("utf-8", errors="replace")[:EXCERPT])
        return obj

    def raw(self, number: int, limit: int = 65536) -> str:
        """The text of line ``number`` (UTF-8, bad bytes replaced), cut at ``limit`` bytes.

        Raises:
            KeyError: when there is no such line.
        """
        ref = self.ref(number)
        try:
            data = self._bytes(ref, max(0, limit))
        except OSError as exc:
            return f"(cannot read {self.path}: {exc.strerror or exc})"
        return data.decode("utf-8", errors="replace")

    def scan(self, start: int = 0) -> Iterator[tuple[LineRef, dict[str, Any] | None]]:
        """Every line from index ``start`` (0-based into :attr:`lines`) with its object (``None`` when not ok).

        Streamed: one line in memory at a time. A line that changed on disk since it was indexed comes as
        ``(ref, None)``.
        """
        refs = self.lines[max(0, start):]
        if not refs:
            return
        try:
            fh = open(self.path, "rb")  # held across the yields, closed by the with below
        except OSError:
            for ref in refs:
                yield ref, None
            return
        with fh:
            for ref in refs:
                obj = None
                if ref.state == "ok":
                    fh.seek(ref.offset)
                    obj, _ = parse_line(fh.read(ref.length))
                yield ref, obj
