"""``ponder mcp serve``: serve ponder's tools to other agents and desktop clients over MCP (stdio or HTTP)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from ponder.core.textsafe import setup_logging
from ponder.core.types import MCPTransport, SandboxKind

mcp_app = typer.Typer(help="Model Context Protocol: serve ponder's tools to other agents and desktop clients.",
                      no_args_is_help=True)

_TOOLS_HELP = ("Comma-separated tools to serve: calculator, python, search, lookup, retrieve, memory_search "
               "(default: all).")


@mcp_app.command("serve")
def mcp_serve(
    transport: Annotated[MCPTransport, typer.Option(help="stdio (for a client that starts ponder) or http "
                                                         "(streamable HTTP at http://HOST:PORT/mcp).")] = "stdio",
    host: Annotated[str | None, typer.Option(help="HTTP: address to listen on [default: 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="HTTP: port (0: a free one, printed on "
                                             "stderr) [default: 8765].")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="HTTP: allow a --host that is not a loopback "
                                               "address (no authentication: anyone reaching it can use the "
                                               "tools).")] = False,
    tools: Annotated[str | None, typer.Option(help=_TOOLS_HELP)] = None,
    sandbox: Annotated[SandboxKind | None, typer.Option(help="Where python code runs: local or e2b.")] = None,
    exec_timeout: Annotated[float | None, typer.Option(help="Wall-clock seconds per python call.")] = None,
    corpus: Annotated[Path | None, typer.Option(help="JSONL corpus {id,title,text} for search, lookup and retrieve "
                                                     "(default: settings).")] = None,
    memory_path: Annotated[Path | None, typer.Option(help="Memory store directory for memory_search "
                                                          "(default: settings).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Memory namespace searched (default: settings).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log sessions and calls on stderr.")] = False,
) -> None:
    """Serve ponder's tools over MCP; one sandbox session per client session. Logs go to stderr."""
    from ponder.core.settings import load_settings
    from ponder.serving.mcp_server import DEFAULT_TOOLS, build_mcp_server, parse_tool_names
    from ponder.serving.mcp_transports import check_host, serve_http, serve_stdio

    setup_logging(logging.INFO if verbose else logging.WARNING)
    if transport == "stdio" and (host is not None or port is not None or allow_remote):
        raise typer.BadParameter("--host, --port and --allow-remote are for --transport http", param_hint="--port")
    host, port = host or "127.0.0.1", 8765 if port is None else port
    if transport == "http":
        check_host(host, allow_remote=allow_remote)
    names = parse_tool_names(tools) if tools is not None else list(DEFAULT_TOOLS)
    settings = load_settings(sandbox=sandbox, exec_timeout=exec_timeout, search_corpus=corpus,
                             memory_path=memory_path, memory_namespace=namespace)
    mcp = build_mcp_server(settings, names)
    if transport == "http":
        serve_http(mcp, host, port, allow_remote=allow_remote)
    else:
        print(f"ponder mcp: serving {', '.join(mcp.names)} over stdio", file=sys.stderr, flush=True)
        serve_stdio(mcp)
