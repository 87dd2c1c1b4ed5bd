"""The ``ponder`` command line: ``run`` and ``graph`` (chat, eval, memory and sandbox land with their issues)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from ponder.errors import PonderError

app = typer.Typer(
    name="ponder",
    help="Agents that think before they answer: ReAct and PAL on a local or served model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

AgentOpt = Annotated[str | None, typer.Option("--agent", "-a", help="react or pal (default: settings).")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Model spec, e.g. embedded, "
                                                                   "openai:<model>@<url>, scripted:<file>.")]


@app.command()
def run(
    question: Annotated[str, typer.Argument(help="The question or task.")],
    agent: AgentOpt = None,
    model: ModelOpt = None,
    max_steps: Annotated[int | None, typer.Option(help="Max model calls for this run.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per model call.")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed.")] = None,
    device: Annotated[str | None, typer.Option(help="Torch device for local models (cpu, cuda).")] = None,
    tools: Annotated[str | None, typer.Option(help="Comma-separated ReAct tools: calculator, python, search, "
                                                   "lookup, retrieve.")] = None,
    sandbox: Annotated[str | None, typer.Option(help="Where code runs: local or e2b.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory for trajectories.jsonl.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the steps.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show backend and timing details.")] = False,
) -> None:
    """Answer QUESTION with an agent and print its steps and final answer."""
    from ponder.agents.runner import AGENTS, run_agent
    from ponder.cli_render import StepPrinter, console, err_console
    from ponder.config import load_settings
    from ponder.errors import ConfigError
    from ponder.models.spec import load_model

    if agent is not None and agent not in AGENTS:
        raise ConfigError(f"--agent must be one of: {', '.join(AGENTS)} (got {agent!r})")
    _setup_logging(verbose)
    settings = load_settings(agent=agent, model=model, max_steps=max_steps, temperature=temperature,
                             max_tokens=max_tokens, seed=seed, device=device, out_dir=out, sandbox=sandbox,
                             tools=[t.strip() for t in tools.split(",") if t.strip()] if tools else None)
    status_console = err_console if as_json else console
    with status_console.status(f"Loading model {settings.model} ..."):
        backend = load_model(settings.model, settings)
    if verbose:
        info = getattr(backend, "load_info", {})
        status_console.print(f"[dim]model {backend.spec} via {getattr(backend, 'backend_name', '?')} {info}[/]")
    printer = None if as_json else StepPrinter(console, verbose=verbose)
    traj = run_agent(question, agent=settings.agent, settings=settings, model=backend,
                     on_step=printer.step if printer else None)
    if as_json:
        print(json.dumps({
            "id": traj.id, "answer": traj.final_answer, "status": traj.status, "steps": len(traj.steps),
            "usage": traj.usage.model_dump(), "trajectory_path": traj.metadata.get("trajectory_path"),
            "agent": traj.agent, "model": traj.model, "backend": traj.backend, "error": traj.error,
        }))
    else:
        assert printer is not None
        printer.final(traj)


@app.command()
def graph(
    agent: Annotated[str, typer.Argument(help="react or pal")] = "react",
) -> None:
    """Print the Mermaid diagram of an agent graph."""
    from ponder.agents.runner import AGENTS
    from ponder.errors import ConfigError
    from ponder.graphs.diagram import mermaid

    if agent not in AGENTS:
        raise ConfigError(f"unknown graph {agent!r}; choose one of: {', '.join(AGENTS)}")
    print(mermaid(agent), end="")


sandbox_app = typer.Typer(help="Run code in the sandbox by hand (the same one PAL and the python tool use).",
                          no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("exec")
def sandbox_exec(
    code: Annotated[str, typer.Argument(help="Python code to run; '-' reads it from standard input.")],
    sandbox: Annotated[str | None, typer.Option(help="local or e2b (default: settings).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Wall-clock seconds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
) -> None:
    """Run CODE in a fresh sandbox session and show what happened (exit 1 when the code failed)."""
    from ponder.cli_render import console, print_exec_result
    from ponder.config import load_settings
    from ponder.tools.sandbox import open_sandbox

    source = sys.stdin.read() if code == "-" else code
    settings = load_settings(sandbox=sandbox, exec_timeout=timeout)
    session = open_sandbox(settings)
    try:
        result = session.run(source)
    finally:
        session.close()
    if as_json:
        print(result.model_dump_json())
    else:
        print_exec_result(console, result, getattr(session, "isolation_in_use", settings.sandbox))
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print ponder's version."""
    from ponder import __version__

    print(__version__)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


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
        hint = f" (see 'ponder {exc.ctx.info_name} --help')" if exc.ctx and exc.ctx.parent else ""
        print(f"ponder: error: {exc.format_message()}{hint}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        print("ponder: aborted", file=sys.stderr)
        return 130
    except PonderError as exc:
        print(f"ponder: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
