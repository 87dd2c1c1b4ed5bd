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
    """Fresh tool objects for one agent run, in the order given.

    ``search``, ``lookup`` and ``retrieve`` share one search session.

    Raises:
        ConfigError: for a name that is not a :data:`~ponder.core.types.ToolName`.
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
    return tools


def close_tools(tools: list[Tool]) -> None:
    """Release per-run resources (sandbox sessions) of tools that hold any."""
    for t in tools:
        if isinstance(t, Closeable):
            t.close()
