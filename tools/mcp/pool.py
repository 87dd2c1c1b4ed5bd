"""The process's MCP connections: one per configured server, opened at first use, reused, closed at exit.

:func:`mcp_tools` is what the tool registry calls; :func:`close_mcp` closes everything (it is registered with
``atexit`` at the first connection, and a SIGTERM or SIGHUP closes the servers before the process ends).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from types import FrameType

from ponder.core.errors import ConfigError
from ponder.core.settings import EcosystemSettings, MCPServerConfig
from ponder.tools.base import Tool
from ponder.tools.mcp.connection import ServerConnection
from ponder.tools.mcp.loop import LoopThread
from ponder.tools.mcp.naming import agent_tool_name, check_unique
from ponder.tools.mcp.tool import MCPTool

log = logging.getLogger(__name__)

_LOCK = threading.RLock()  # re-entrant: a signal handler in the main thread may close while it opens
_LOOP = LoopThread()
_CONNECTIONS: dict[str, ServerConnection] = {}
_HOOKED = False


def mcp_tools(settings: EcosystemSettings) -> list[Tool]:
    """The tools of every server in ``settings.mcp_servers``, in that order (each server's in its order).

    Raises:
        ConfigError: a server could not be started, reached or listed within its ``startup_timeout``, a tool
            name does not fit, or two tools share a name (set a ``prefix``).
    """
    tools: dict[str, list[Tool]] = {}
    for name in dict.fromkeys(settings.mcp_servers):
        config = settings.mcp.servers[name]
        connection = _connection(name, config)
        allowed = set(config.tools) if config.tools is not None else None
        specs = [s for s in connection.tools if allowed is None or s.name in allowed]
        missing = sorted(allowed - {s.name for s in connection.tools}) if allowed is not None else []
        if missing:
            have = ", ".join(s.name for s in connection.tools) or "none"
            raise ConfigError(f"MCP server {name!r} has no tool(s) {', '.join(missing)} (its tools = [...] "
                              f"allowlist); it has: {have}")
        tools[f"MCP server {name!r}"] = [MCPTool(agent_tool_name(name, config.prefix, s.name), s, connection)
                                         for s in specs]
    check_unique({owner: [t.name for t in ts] for owner, ts in tools.items()})
    return [t for ts in tools.values() for t in ts]


def close_mcp() -> None:
    """Close every MCP connection of this process and stop their servers (a later use opens them again)."""
    with _LOCK:
        connections = list(_CONNECTIONS.values())
        _CONNECTIONS.clear()
    for connection in connections:
        try:
            connection.close()
        except Exception:  # closing the others matters more
            log.warning("closing MCP server %r failed", connection.name, exc_info=True)
    if connections:
        _LOOP.stop()


def open_servers() -> list[str]:
    """The names of the servers connected now (for tests and diagnostics)."""
    with _LOCK:
        return [name for name, c in _CONNECTIONS.items() if not c.broken]


def _connection(name: str, config: MCPServerConfig) -> ServerConnection:
    """The open connection to ``name``; a new one if there is none, its config changed or it broke."""
    with _LOCK:
        current = _CONNECTIONS.get(name)
        if current is not None and current.config == config and not current.broken:
            return current
        if current is not None:
            del _CONNECTIONS[name]
            current.close()
        _hook_exit()
        connection = ServerConnection(name, config, _LOOP)
        _CONNECTIONS[name] = connection  # before open(): a close during the start stops it too
        try:
            connection.open()
        except BaseException:
            _CONNECTIONS.pop(name, None)
            raise
        log.info("MCP server %r (%s): %d tools", name, connection.where, len(connection.tools))
        return connection


def _hook_exit() -> None:
    """Close the servers at interpreter exit, and on SIGTERM / SIGHUP where those would kill us outright."""
    global _HOOKED
    if _HOOKED:
        return
    _HOOKED = True
    atexit.register(close_mcp)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _close_and_die)


def _close_and_die(signum: int, frame: FrameType | None) -> None:
    """Close the MCP servers, then die of the signal as the default action would."""
    try:
        close_mcp()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
