"""The ``ponder`` command line: one Typer app (``ponder.cli.entry``) with its command groups in this package."""

from ponder.cli.entry import app, main

__all__ = ["app", "main"]
