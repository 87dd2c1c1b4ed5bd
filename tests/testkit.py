"""Small helpers shared by test modules (tests/conftest.py puts this folder on ``sys.path``: ``import testkit``)."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from rich.console import Console

#: Terminal escapes (OSC 52 clipboard write, cursor moves, C1 CSI, a carriage return) and Rich markup.
EVIL = "\x1b]52;c;cm0gLXJmIH4K\x07\x1b[1A\x1b[2K\x9b2J[bold red]markup[/] fake\rreal"
#: Control characters that must never reach a terminal (tab and newline allowed).
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def render(fn: Callable[[Console], object]) -> str:
    """What ``fn`` prints on a plain 300-column Rich console."""
    buf = io.StringIO()
    fn(Console(file=buf, width=300, highlight=False))
    return buf.getvalue()


def processes_with(marker: str) -> list[int]:
    """Pids of the processes whose command line contains ``marker``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def drain_stream(stream: Generator[str, None, Any]) -> tuple[list[str], Any]:
    """Every piece a backend's ``stream`` yields, and the completion it returns at the end."""
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return pieces, done.value
