"""Tools by name, so settings and CLI flags can choose them (``--tools calculator,python,search``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError
from ponder.core.types import ToolName, choices
from ponder.tools.base import Closeable

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.tools.base import Tool


def build_tools(names: Sequence[ToolName | str], settings: Settings) -> list[Tool]:
    """Fresh tool objects for one agent run, in the order given, then the tools of ``settings.mcp_servers``.

    ``search``, ``lookup`` and ``retrieve`` share one search session. MCP servers are connected once per process
    and shared by every run (:mod:`ponder.tools.mcp`).

    Raises:
        ConfigError: for a name that is not a :data:`~ponder.core.types.ToolName`, an MCP server that cannot be
            used, or two tools of the same name.
    """
    available = choices(ToolName)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"unknown tool(s) {', '.join(unknown)}; available: {', '.join(available)}")
    search: dict[str, Tool] = {}
    if any(n in ("search", "lookup", "retrieve") for n in names):
        from ponder.tools.search.tools import search_tools

        search = {t.name: t for t in search_tools(settings)}
    tools: list[Tool] = []
    for name in dict.fromkeys(names):
        if name == "calculator":
            from ponder.tools.calculator import calculator_tool

            tools.append(calculator_tool())
        elif name == "python":
            from ponder.tools.python_tool import PythonTool
            from ponder.tools.sandbox import open_sandbox

            tools.append(PythonTool(lambda: open_sandbox(settings)))
        else:
            tools.append(search[name])
    if settings.mcp_servers:
        tools.extend(_with_mcp_tools(tools, settings))
    return tools


def _with_mcp_tools(builtin: list[Tool], settings: Settings) -> list[Tool]:
    """The MCP servers' tools, checked against the built-in ones for clashing names."""
    from ponder.tools.mcp import MCPTool, mcp_tools
    from ponder.tools.mcp.naming import check_unique

    extra = mcp_tools(settings)
    by_server: dict[str, list[str]] = {}
    for t in extra:
        owner = f"MCP server {t.server!r}" if isinstance(t, MCPTool) else "MCP"
        by_server.setdefault(owner, []).append(t.name)
    check_unique({"the built-in tools": [t.name for t in builtin], **by_server})
    return extra


def close_tools(tools: list[Tool]) -> None:
    """Release per-run resources (sandbox sessions) of tools that hold any."""
    for t in tools:
        if isinstance(t, Closeable):
            t.close()
