"""``ponder sandbox exec``: run code by hand in the sandbox PAL and the python tool use."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ponder.core.types import SandboxKind

if TYPE_CHECKING:
    from rich.console import Console

    from ponder.tools.executor import ExecResult

sandbox_app = typer.Typer(help="Run code in the sandbox by hand (the same one PAL and the python tool use).",
                          no_args_is_help=True)


@sandbox_app.command("exec")
def sandbox_exec(
    code: Annotated[str, typer.Argument(help="Python code to run; '-' reads it from standard input.")],
    sandbox: Annotated[SandboxKind | None, typer.Option(help="local or e2b (default: settings).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Run CODE in a fresh sandbox session and show what happened (exit 1 when the code failed)."""
    from ponder.core.console import console
    from ponder.core.settings import load_settings
    from ponder.tools.sandbox import open_sandbox
    from ponder.tools.sandbox.local import LocalSandbox

    source = sys.stdin.read() if code == "-" else code
    settings = load_settings(sandbox=sandbox, exec_timeout=timeout)
    session = open_sandbox(settings)
    try:
        result = session.run(source)
    finally:
        session.close()
    if as_json:
        print(json.dumps(result.model_dump(mode="json")))  # ASCII: C1 controls become \u escapes too
    else:
        isolation = session.isolation_in_use if isinstance(session, LocalSandbox) else settings.sandbox
        print_exec_result(console, result, isolation)
    if not result.ok:
        raise typer.Exit(1)


def print_exec_result(out: Console, result: ExecResult, isolation: str) -> None:
    """Print a sandbox run: output, value, error or kill reason, and timing (untrusted text made inert)."""
    from ponder.core.console import safe

    if result.stdout:
        out.print(safe(result.stdout.rstrip()))
    if result.stderr:
        out.print(f"[red]{safe(result.stderr.rstrip())}[/]")
    if result.value is not None:
        out.print(f"[green]→ {safe(result.value)}[/]")
    if result.killed:
        out.print(f"[red]killed: {safe(result.kill_reason or '')}[/]")
    elif result.error_type:
        out.print(f"[red]{safe(result.summary())}[/]")
    cut = " · output truncated" if result.truncated else ""
    out.print(f"[dim]{result.duration * 1000:.0f} ms · isolation {safe(isolation)}{cut}[/]")
