"""The ``ponder`` command line: one Typer app (``ponder.cli.app``) with its command groups in this package."""

from ponder.cli.app import app, main

__all__ = ["app", "main"]
