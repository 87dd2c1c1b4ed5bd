"""The ``ponder`` Typer app and its entry point; each command group lives in its own module of this package.

``run`` (:mod:`~ponder.cli.run`, self-consistency output in :mod:`~ponder.cli.sc`), ``graph``
(:mod:`~ponder.cli.graph`), ``chat`` (:mod:`~ponder.cli.chat`), ``sandbox exec`` (:mod:`~ponder.cli.sandbox`),
``memory ...`` (:mod:`~ponder.cli.memory`), ``mcp serve`` (:mod:`~ponder.cli.mcp`), ``eval`` and ``report``
(:mod:`~ponder.cli.eval`), ``view`` (:mod:`~ponder.cli.view`) and ``version``.
Every command imports its heavy modules inside its function, so ``ponder --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from ponder.cli.chat import chat_command
from ponder.cli.eval import eval_command, report_command
from ponder.cli.export import export_app
from ponder.cli.export_gguf import export_gguf_command
from ponder.cli.export_gold import export_gold
from ponder.cli.graph import graph
from ponder.cli.mcp import mcp_app
from ponder.cli.memory import memory_app
from ponder.cli.run import run
from ponder.cli.sandbox import sandbox_app
from ponder.cli.star import star_command
from ponder.cli.train import train_command
from ponder.cli.view import view_command
from ponder.core.errors import BadLinesError, PonderError
from ponder.core.textsafe import terminal_safe

app = typer.Typer(
    name="ponder",
    help="Agents that think before they answer: ReAct and PAL on a local or served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def version() -> None:
    """Print ponder's version."""
    from ponder import __version__

    print(__version__)


app.command()(run)
app.command()(graph)
app.command("chat")(chat_command)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(memory_app, name="memory")
app.add_typer(mcp_app, name="mcp")
app.command("eval")(eval_command)
app.command("report")(report_command)
export_app.command("gold")(export_gold)
export_app.command("gguf")(export_gguf_command)
app.add_typer(export_app, name="export")
app.command("train")(train_command)
app.command("star")(star_command)
app.command("view")(view_command)
app.command()(version)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ponder`` console script: usage errors and typed errors become one line."""
    from typer._click import exceptions as click_exc  # typer vendors click

    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="ponder", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:  # bare `ponder`
        print(exc.ctx.get_help() if exc.ctx else "", file=sys.stderr)
        return 2
    except click_exc.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx and exc.ctx.parent else ""
        message = exc.format_message().replace("Value error, ", "")  # typer checks choices with pydantic
        print(terminal_safe(f"ponder: error: {message}{hint}"), file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("ponder: aborted", file=sys.stderr)
        return 130
    except BadLinesError as exc:  # every bad line of a user's file (file:line: reason), then the one error line
        print(*map(terminal_safe, [*exc.details(), f"ponder: error: {exc.summary}"]), sep="\n", file=sys.stderr)
        return exc.exit_code
    except PonderError as exc:
        print(terminal_safe(f"ponder: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
