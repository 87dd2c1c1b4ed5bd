"""Links into ``ponder view``: the default port and the stable key of a run folder.

The viewer names each run folder by :func:`run_key` (a hash of its resolved path), so a link written before the
viewer starts -- the static report's, ``ponder eval``'s last line -- opens the same run whenever ``ponder view``
serves a folder that contains it.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

#: The port ``ponder view`` listens on unless ``--port`` says otherwise (on 127.0.0.1 only).
DEFAULT_PORT = 8765
HOST = "127.0.0.1"


def run_key(path: Path) -> str:
    """The viewer's key of the run folder ``path``: 12 hex digits of the SHA-256 of its resolved path."""
    return hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:12]


def run_url(path: Path, port: int = DEFAULT_PORT) -> str:
    """The viewer's page of the run folder ``path`` (served by ``ponder view`` on a folder that holds it)."""
    return f"http://{HOST}:{port}/run/{run_key(path)}"


def compare_url(a: Path, b: Path, port: int = DEFAULT_PORT) -> str:
    """The viewer's side-by-side page of two run folders (``ponder view`` on a folder holding both)."""
    return f"http://{HOST}:{port}/compare?a={run_key(a)}&b={run_key(b)}"


def view_command(path: Path) -> str:
    """The command that serves ``path``'s run folder: ``ponder view <folder>`` (quoted for a shell)."""
    return f"ponder view {shlex.quote(str(Path(path)))}"
