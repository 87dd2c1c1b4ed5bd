"""ponder's one io module: atomic file writes, and the append-only JSONL of its own records.

Atomic writes: a fresh temporary file beside the target, fsynced, then renamed over it.

The temporary file comes from :func:`tempfile.mkstemp` in the target's folder (``O_CREAT | O_EXCL`` under an
unpredictable name), so a symlink planted at a guessable name cannot redirect the write, two writers never
share a temporary file, and a crash leaves either the old file or the new one, never half of one.

JSONL records are appended with flush + fsync, so a crash mid-run keeps every finished record; user files
(``memory import``, ``--data``, corpora) are read strictly by :mod:`ponder.core.datafiles` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError

from ponder.core.errors import DataError
from ponder.core.records import Trajectory

T = TypeVar("T", bound=BaseModel)


def _umask() -> int:
    """The process umask, read without changing it (``/proc/self/status``), else by setting it back at once."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, binary: bool = False, encoding: str = "utf-8",
                  mode: int | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    Args:
        path: The file to (re)place. Its folder is created when missing.
        binary: Yield a binary file instead of a text one.
        encoding: Encoding of the text file.
        mode: Permission bits of the new file (default: what ``open()`` would give, ``0o666`` less the umask).

    Yields:
        The open temporary file. When the block raises, it is removed and ``path`` is left as it was.

    Raises:
        DataError: when ``path`` is a directory (an output option given a folder), before anything is written.
    """
    target = Path(path)
    if target.is_dir():
        raise DataError(f"{target} is a directory; name a file to write")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, (0o666 & ~_umask()) if mode is None else mode)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": encoding})) as fh:
            fd = -1  # the file object owns it now
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def fresh_dir(target: str | Path) -> Path:
    """A new, empty folder beside ``target`` under an unpredictable name, to fill and then ``os.replace`` onto it.

    Made by :func:`tempfile.mkdtemp` (so no planted symlink or other writer's folder is ever reused), with the
    permissions ``mkdir`` would give (``0o777`` less the umask). The caller removes it when the rename fails.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def write_atomic(path: str | Path, data: str | bytes | bytearray | memoryview, *, encoding: str = "utf-8",
                 mode: int | None = None) -> Path:
    """Write ``data`` (text, or any bytes-like) to ``path`` atomically through :func:`atomic_writer`; returns it."""
    with atomic_writer(path, binary=not isinstance(data, str), encoding=encoding, mode=mode) as fh:
        fh.write(data)
    return Path(path)


def append_jsonl(path: str | Path, record: BaseModel) -> Path:
    """Append one record as a JSON line, flushed and fsynced before returning."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = record.model_dump_json() + "\n"
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return p


def read_jsonl(path: str | Path, model: type[T] = Trajectory) -> Iterator[T]:  # type: ignore[assignment]
    """Yield validated records from one of ponder's own append-only JSONL files (trajectories, results).

    A truncated last line (a crash mid-write) is skipped; any other bad line raises. The tolerance is
    for ponder's own records only: files a user hands in (``memory import``, ``--data``, corpora, scripts)
    are read strictly by :func:`ponder.core.datafiles.read_jsonl_file`, which reports every bad line.

    Raises:
        DataError: naming the file and line of a malformed record.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such records file: {p}")
    lines = p.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield model.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            is_last = lineno == len(lines) or all(not rest.strip() for rest in lines[lineno:])
            if is_last and isinstance(exc, json.JSONDecodeError):
                return
            raise DataError(f"{p}:{lineno}: invalid record: {exc}") from None
