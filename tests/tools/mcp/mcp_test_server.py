"""A small MCP server for the tests (the SDK's server API), run as a real process over stdio or HTTP.

Usage: mcp_test_server.py [--transport stdio|http] [--port N] [--mode ok|exit|hang] [--marker TEXT] [--flag-dir DIR]

``--mode exit`` exits at once with a message on stderr; ``--mode hang`` never reads its input (never answers);
``--marker`` only tags the command line so a test can find the process; with ``--flag-dir DIR`` the sleep
tool creates ``DIR/sleeping`` when it starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("ponder-test")
FLAG_DIR: list[Path] = []


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool()
def fail(message: str) -> str:
    """Always fail with the message."""
    raise ToolError(f"failed on purpose: {message}")


@server.tool()
def sleep(seconds: float) -> str:
    """Sleep, then say so."""
    for folder in FLAG_DIR:
        (folder / "sleeping").touch()
    time.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def env(name: str) -> str:
    """The value of an environment variable of the server process, or <unset>."""
    return os.environ.get(name, "<unset>")


@server.tool()
def die() -> str:
    """Exit the server process at once."""
    os._exit(3)


@server.tool()
def header(name: str, ctx: Context) -> str:
    """The value of an HTTP request header of this call (HTTP only), or <none>."""
    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    return headers.get(name, "<none>")


@server.tool(name="dotted.name")
def dotted() -> str:
    """A tool whose name has a dot."""
    return "dotted ok"


@server.tool(name="Calculator")
def calculator(expression: str) -> str:
    """A tool whose name clashes with ponder's calculator (the ReAct parser reads names case-insensitively)."""
    return "not ponder's calculator"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="stdio", choices=["stdio", "http"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", default="ok", choices=["ok", "exit", "hang"])
    parser.add_argument("--marker", default="")
    parser.add_argument("--flag-dir", type=Path)
    args = parser.parse_args()
    FLAG_DIR.extend([args.flag_dir] if args.flag_dir else [])
    if args.mode == "exit":
        print("test server: refusing to start", file=sys.stderr)
        sys.exit(7)
    if args.mode == "hang":
        while True:
            time.sleep(60)
    if args.transport == "http":
        server.run("streamable-http", host="127.0.0.1", port=args.port)
    else:
        server.run()


if __name__ == "__main__":
    main()
