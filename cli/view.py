"""``ponder view [DIR...]``: serve the local web viewer over run folders (on 127.0.0.1 only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ponder.core.viewlinks import DEFAULT_PORT


def view_command(
    dirs: Annotated[list[Path] | None, typer.Argument(
        help="Folders to browse (searched recursively for run folders; default: runs).")] = None,
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help=f"Port on 127.0.0.1 (default {DEFAULT_PORT}; 0: any free port).")]
    = DEFAULT_PORT,
    poll: Annotated[float, typer.Option("--poll", min=0.2, max=60.0,
                                        help="Seconds between a live page's checks for new records.")] = 2.0,
) -> None:
    """Browse runs, eval episodes, trajectories, votes and search trees in a local web page (offline).

    The server listens on 127.0.0.1 only; open the printed address in a browser. A running eval's new
    records appear without reloading. Ctrl-C stops it.
    """
    from ponder.core.errors import ConfigError
    from ponder.viewer.server import serve

    if not dirs and not Path("runs").is_dir():
        raise ConfigError("no runs/ folder here: pass the folders to browse (ponder view DIR...), or make records "
                          "first with ponder run / ponder eval (they write to runs/)")
    serve(dirs or [Path("runs")], port=port, poll_seconds=poll)
