"""Tools by name, so settings and CLI flags can choose them (``--tools calculator,python,search``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.tools.base import Tool

#: Every tool name ponder ships; ``search``, ``lookup`` and ``retrieve`` share one search session per run.
TOOL_NAMES = ("calculator", "python", "search", "lookup", "retrieve")


def build_tools(names: list[str], settings: Settings) -> list[Tool]:
    """Fresh tool objects for one agent run, in the order given.

    Raises:
        ConfigError: for an unknown tool name.
    """
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        raise ConfigError(f"unknown tool(s) {', '.join(unknown)}; available: {', '.join(TOOL_NAMES)}")
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
    return tools


def close_tools(tools: list[Tool]) -> None:
    """Release per-run resources (sandbox sessions) of tools that hold any."""
    for t in tools:
        close = getattr(t, "close", None)
        if callable(close):
            close()
