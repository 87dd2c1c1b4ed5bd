"""The ``ponder chat`` command (registered in ``ponder.cli``; heavy imports happen inside the function)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ponder.cli.ecosystem_options import McpOpt, ToolCallingOpt, TraceOpt, ecosystem_overrides
from ponder.cli.run import ConstrainedOpt, tool_list
from ponder.cli.spec_options import spec_options

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.models.base import ModelBackend


@spec_options(short={"agent": "-a"})
def chat_command(
    thread: Annotated[str | None, typer.Option("--thread", "-t", help="Resume this thread (see /threads).")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model spec, e.g. embedded, "
                                              "openai:<model>@<url>, scripted:<file>.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only the answers.")] = False,
    tools: Annotated[str | None, typer.Option(help="Comma-separated ReAct tools (none: only the "
                                                                     "--mcp servers' tools).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Max model calls per turn.")] = None,
    constrained: ConstrainedOpt = None,
    mcp: McpOpt = None,
    tool_calling: ToolCallingOpt = None,
    trace: TraceOpt = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Max new tokens per model call.")] = None,
    db: Annotated[Path | None, typer.Option(help="The threads database (default: "
                                            "$XDG_DATA_HOME/ponder/chat/threads.sqlite).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show token counts, timings, backend.")] = False,
    **spec_values: Any,
) -> None:
    """Chat with an agent: streamed steps, multi-turn threads that survive restarts, slash commands (/help).

    How a turn runs (agent, samples, vote, trials, memory, ...) starts from the run-spec options; the slash
    commands of the same names change it during the chat.
    """
    import logging

    from ponder.chat.render import ChatRenderer
    from ponder.chat.repl import make_reader, run_repl
    from ponder.chat.session import ChatSession
    from ponder.chat.threads import default_db_path
    from ponder.core.console import console
    from ponder.core.settings import load_settings
    from ponder.core.textsafe import setup_logging
    from ponder.core.tracing import configure_tracing
    from ponder.graphs.strategies.spec import parse_spec

    setup_logging(logging.INFO if verbose else logging.WARNING)
    spec = parse_spec(spec_values)
    settings = load_settings(agent=spec.agent, model=model, max_steps=max_steps, temperature=temperature,
                             max_tokens=max_tokens, memory=spec.memory,
                             tools=tool_list(tools), constrained_steps=constrained,
                             **ecosystem_overrides(mcp=mcp, tool_calling=tool_calling, trace=trace))
    configure_tracing(settings)
    renderer = ChatRenderer(console, quiet=quiet, verbose=verbose)
    db_path = db or default_db_path()
    session = ChatSession.open(settings, renderer, db_path=db_path, thread_id=thread, spec=spec)
    try:
        backend = session.load_model()
        _check_tools(settings, backend, session.agent)
        turns = session.turns()
        if not quiet:
            renderer.info(f"ponder chat · thread {session.thread_id}"
                          f"{f' ({len(turns)} earlier turns)' if turns else ''} · agent {session.agent} · "
                          f"model {settings.model} on {backend.backend_name} · /help for commands")
        if verbose:
            from ponder.agents.grammar import wants_grammar

            constrained = wants_grammar(settings.constrained_steps, backend, session.agent)
            renderer.info(f"agent steps: {'grammar-constrained' if constrained else 'unconstrained'} "
                          f"(--constrained {settings.constrained_steps})")
        history = db_path.parent / "input_history"
        code = run_repl(session, make_reader(history))
    finally:
        session.store.close()
    if code:
        raise typer.Exit(code)


def _check_tools(settings: Settings, backend: ModelBackend, agent: str) -> None:
    """Fail at the start, not at every turn (ConfigError: one line, exit 2).

    Checks MCP servers that cannot start, tool names that clash, and ``--tool-calling native`` on a model
    without it. The MCP connections opened here are the ones the turns reuse.
    """
    if agent != "react":
        return
    from ponder.agents.runner import tool_protocol
    from ponder.tools.base import ToolBox
    from ponder.tools.registry import build_tools, close_tools

    tools = build_tools(settings.tools, settings)
    try:
        tool_protocol(settings.tool_calling, backend, agent, ToolBox(tools))
    finally:
        close_tools(tools)  # per-run resources only: the MCP connections stay open for the turns

