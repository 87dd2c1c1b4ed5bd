"""Tool names from MCP servers: made fit for the ReAct ``Action:`` line and native tool calling, kept unique."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ponder.core.errors import ConfigError

#: What a tool name may be: OpenAI function names' alphabet and length, which the ReAct parser also reads whole.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNFIT = re.compile(r"[^A-Za-z0-9_-]")


def agent_tool_name(server: str, prefix: str, tool: str) -> str:
    """The name the agent uses for ``tool`` of ``server``: ``prefix + tool``, made fit.

    Characters other than letters, digits, ``_`` and ``-`` (``.``, ``/``, spaces) become ``_``.

    Raises:
        ConfigError: when the result is empty or longer than 64 characters.
    """
    name = _UNFIT.sub("_", prefix + tool)
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"MCP server {server!r}: tool {tool!r} cannot be named {name!r} (tool names are 1-64 "
                          "characters of A-Z, a-z, 0-9, _ and -): shorten the prefix or leave the tool out "
                          f"with tools = [...] in [mcp.servers.{server}]")
    return name


def check_unique(owners: Mapping[str, Iterable[str]]) -> None:
    """Refuse two tools whose names differ at most in case (the ReAct parser matches names case-insensitively).

    Args:
        owners: Each source (``builtin`` or ``MCP server 'NAME'``) and the tool names it brings, in order.

    Raises:
        ConfigError: naming both owners of the first clash and suggesting a ``prefix``.
    """
    seen: dict[str, tuple[str, str]] = {}
    for owner, names in owners.items():
        for name in names:
            key = name.lower()
            if key in seen:
                other_name, other = seen[key]
                raise ConfigError(f"two tools are named {name!r}: {other} ({other_name!r}) and {owner}; set a "
                                  "prefix in [mcp.servers.NAME] (e.g. prefix = \"fs_\") to tell them apart")
            seen[key] = (name, owner)
