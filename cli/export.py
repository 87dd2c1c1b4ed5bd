"""``ponder export sft``: trajectories as training data (helper "export" implements it)."""

from __future__ import annotations

import typer

export_app = typer.Typer(help="Export records as training data.", no_args_is_help=True)


@export_app.command("sft")
def export_sft() -> None:
    """Turn trajectories into chat-format training data (being written)."""
    raise NotImplementedError("helper export")
