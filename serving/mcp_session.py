"""The tools of one MCP client session, and the registry of open sessions (closed when the server stops).

Each client session of ``ponder mcp serve`` gets its own :class:`ToolSession`: its own Python sandbox session
(variables persist across that client's calls, invisible to other clients) and its own search state (``lookup``
reads the page of that client's last ``search``). Tools without state (``calculator``, ``memory_search``) are
shared by every session. Calls run synchronously (the server runs them in worker threads); calls of one
session to the same stateful tool are serialised.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ponder.tools.base import ToolInputError, validate_arguments
from ponder.tools.registry import build_tools, close_tools

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.tools.base import Tool

__all__ = ["SEARCH_TOOLS", "SESSION_TOOLS", "SessionRegistry", "ToolSession", "client_arguments"]

logger = logging.getLogger(__name__)

#: Tools holding per-client state; the others are built once and shared.
SEARCH_TOOLS = ("search", "lookup", "retrieve")  # one search session per client: one lock
SESSION_TOOLS = ("python", *SEARCH_TOOLS)


def client_arguments(t: Tool, arguments: Mapping[str, object] | None) -> BaseModel:
    """The tool's validated arguments.

    Raises:
        ToolInputError: when they do not fit the tool's schema (one line per problem, as the model sees them).
    """
    return validate_arguments(t, dict(arguments or {}), whole="arguments")


class ToolSession:
    """The tools one MCP client sees: fresh stateful tools plus the server's shared ones.

    Args:
        names: The served tool names, in order.
        settings: Sandbox and search settings.
        shared: The stateless tools, by name (built once per server).
    """

    def __init__(self, names: Sequence[str], settings: Settings, shared: Mapping[str, Tool]) -> None:
        own = build_tools([n for n in names if n in SESSION_TOOLS], settings)
        by_name = {t.name: t for t in own} | dict(shared)
        self.tools: dict[str, Tool] = {n: by_name[n] for n in names}
        self._own = own
        self._locks = {n: threading.Lock() for n in ("python", "search")}
        self.closed = False

    def call(self, name: str, arguments: Mapping[str, object] | None) -> str:
        """Run tool ``name`` with the client's arguments and return the text result.

        Raises:
            ToolInputError: unknown tool or bad arguments (the tools' own ToolInputError as well).
            PonderError: a tool failed (e.g. the sandbox could not start).
        """
        t = self.tools.get(name)
        if t is None:
            raise ToolInputError(f"unknown tool {name!r}; available: {', '.join(self.tools)}")
        args = client_arguments(t, arguments)
        lock = self._locks.get("search" if name in SEARCH_TOOLS else name)
        if lock is None:
            return t.run(args)
        with lock:
            return t.run(args)

    def close(self) -> None:
        """Close this session's sandbox (a run in progress is killed); calling it twice is fine."""
        self.closed = True
        close_tools(self._own)


class SessionRegistry:
    """The open :class:`ToolSession` objects of a server, so that stopping the server closes every one."""

    def __init__(self) -> None:
        self._open: set[ToolSession] = set()
        self._lock = threading.Lock()

    def open(self, names: Sequence[str], settings: Settings, shared: Mapping[str, Tool]) -> ToolSession:
        """A new registered session."""
        session = ToolSession(names, settings, shared)
        with self._lock:
            self._open.add(session)
        logger.info("client session opened (%d open)", len(self._open))
        return session

    def close(self, session: ToolSession) -> None:
        """Close and forget one session."""
        with self._lock:
            self._open.discard(session)
        session.close()
        logger.info("client session closed (%d open)", len(self._open))

    def close_all(self) -> int:
        """Close every open session; returns how many there were."""
        with self._lock:
            sessions, self._open = list(self._open), set()
        for session in sessions:
            session.close()
        return len(sessions)

    def __len__(self) -> int:
        return len(self._open)
