"""One MCP server connection: opened once, kept on the background loop, called from any thread, closed once.

The SDK's :class:`mcp.Client` is entered and left in one task (:meth:`ServerConnection._serve`), as anyio
requires; tool calls are separate tasks on the same loop. Every wait is bounded: the start by
``startup_timeout``, a call by ``call_timeout``, a close by ``close_timeout`` (then the server's process
group is killed).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import math
import shlex
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types
import psutil
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT, CallToolResult, Implementation

from ponder.core.errors import ConfigError
from ponder.core.settings import MCPServerConfig
from ponder.tools.mcp import noise
from ponder.tools.mcp.loop import LoopThread
from ponder.tools.mcp.processes import child_pids, kill_groups, new_group_leaders

log = logging.getLogger(__name__)

CLIENT_INFO = Implementation(name="ponder", version="0.1.0")
#: Pages of ``tools/list`` read at most (a server that never ends its listing cannot hang the start).
MAX_TOOL_PAGES = 100
#: Seconds a graceful close may take (the SDK's own close: stdin closed, 2 s, SIGTERM, 2 s, SIGKILL).
CLOSE_TIMEOUT = 8.0
#: Seconds a call may overrun ``call_timeout`` before we stop waiting for the loop.
CALL_GRACE = 5.0


class MCPCallError(Exception):
    """A tool call failed for a reason outside the tool: a timeout, a dead server, a protocol error."""


class ServerConnection:
    """A connection to one configured MCP server.

    Args:
        name: The server's name (``[mcp.servers.NAME]``).
        config: How to reach it.
        loop: The background loop the session lives on.
    """

    def __init__(self, name: str, config: MCPServerConfig, loop: LoopThread) -> None:
        self.name = name
        self.config = config
        self.broken = False
        self.tools: list[mcp_types.Tool] = []
        self._loop = loop
        self._client: Client | None = None
        self._closing: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._close_requested = False
        self._done = threading.Event()
        self._task: concurrent.futures.Future[None] | None = None
        self._procs: list[psutil.Process] = []
        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") if config.command else None

    @property
    def where(self) -> str:
        """The server's command line or URL, for messages."""
        cfg = self.config
        where = shlex.join([cfg.command, *cfg.args]) if cfg.command is not None else str(cfg.url)
        return where.replace("\r", "\\r").replace("\n", "\\n")  # messages stay one line

    def open(self) -> list[mcp_types.Tool]:
        """Start (or connect to) the server, handshake and list its tools, within ``startup_timeout``.

        The tools are also kept in :attr:`tools`.

        Raises:
            ConfigError: one line naming the server and why it could not be used.
        """
        ready: concurrent.futures.Future[list[mcp_types.Tool]] = concurrent.futures.Future()
        self._task = self._loop.submit(self._serve(ready))
        try:
            self.tools = ready.result(self.config.startup_timeout + CLOSE_TIMEOUT)
            return self.tools
        except BaseException as exc:
            problem = "" if isinstance(exc, KeyboardInterrupt | SystemExit) else self._startup_problem(exc)
            self.close()
            if not problem:
                raise
            raise ConfigError(f"MCP server {self.name!r} ({self.where}) {problem}") from None

    def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call ``tool`` with ``arguments`` (at most ``call_timeout`` seconds).

        Raises:
            MCPCallError: the call timed out, the server is gone or answered with a protocol error.
        """
        client, timeout = self._client, self.config.call_timeout
        if client is None or self._done.is_set():
            raise MCPCallError(f"the MCP server {self.name!r} is not running (it exited or was closed)")
        future = self._loop.submit(client.call_tool(tool, arguments, read_timeout_seconds=timeout))
        try:
            return future.result(timeout + CALL_GRACE)
        except (TimeoutError, concurrent.futures.TimeoutError):
            raise MCPCallError(f"{tool} did not answer within {timeout:g} s (call_timeout)") from None
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise MCPCallError(f"{tool} did not answer within {timeout:g} s (call_timeout)") from None
            if exc.code == CONNECTION_CLOSED:
                self.broken = True
                raise MCPCallError(f"the MCP server {self.name!r} closed the connection (it may have exited)") from None
            raise MCPCallError(f"the MCP server {self.name!r} answered with error {exc.code}: {exc.message}") from None
        except Exception as exc:  # the transport failed under the call (a dead process, a dropped HTTP connection)
            self.broken = True
            log.debug("MCP call %s on %s failed", tool, self.name, exc_info=True)
            raise MCPCallError(f"the MCP server {self.name!r} failed: {_leaf(exc)}") from None
        finally:
            future.cancel()  # a call abandoned by Ctrl-C stops waiting on the loop too

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close the session and stop the server; kill its process group if that takes over ``timeout`` s."""
        self._close_requested = True
        if self._task is not None and not self._loop.in_loop_thread():
            self._loop.call_soon(self._request_close)
            if not self._done.wait(timeout):
                log.warning("MCP server %r did not close within %g s; killing it", self.name, timeout)
                self._task.cancel()
        kill_groups(self._procs)
        if self._errlog is not None:
            with contextlib.suppress(OSError):
                self._errlog.close()

    def _request_close(self) -> None:
        if self._closing is not None:
            self._closing.set()
        if self._scope is not None and self._client is None:  # still starting: stop the start
            self._scope.cancel()

    async def _serve(self, ready: concurrent.futures.Future[list[mcp_types.Tool]]) -> None:
        """Hold the session open until a close is requested (the one task that enters and leaves the Client)."""
        self._closing = anyio.Event()
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + self.config.startup_timeout) as scope:
                self._scope = scope
                if self._close_requested:
                    scope.cancel()
                async with Client(self._transport(), client_info=CLIENT_INFO) as client:
                    tools = await _list_tools(client)
                    scope.deadline = math.inf
                    self._client = client
                    ready.set_result(tools)
                    await self._closing.wait()
            if not ready.done():
                ready.set_exception(TimeoutError())
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.warning("MCP server %r: the connection ended: %s", self.name, _leaf(exc))
        finally:
            self._client = None
            self.broken = True
            if not ready.done():
                ready.set_exception(MCPCallError("closed while starting"))
            self._done.set()

    def _transport(self) -> Any:
        cfg = self.config
        if cfg.command is None:
            return _http_transport(str(cfg.url), cfg.headers, cfg.startup_timeout)
        params = StdioServerParameters(command=cfg.command, args=cfg.args, env=cfg.env or None, cwd=cfg.cwd)
        noise.install()  # stray stdout lines: one warning, not a traceback each
        return self._tracked(stdio_client(params, errlog=self._errlog))  # type: ignore[arg-type]

    @asynccontextmanager
    async def _tracked(self, transport: Any) -> AsyncIterator[Any]:
        """The stdio transport, noting the server's process (group) as soon as it is spawned."""
        before = child_pids()
        async with transport as streams:
            self._procs = new_group_leaders(before, list(self.config.args))
            yield streams

    def _startup_problem(self, exc: BaseException) -> str:
        """Why the start failed, in a few words, with the last lines the server wrote to stderr."""
        timeout = self.config.startup_timeout
        leaf = _leaf(exc)
        if isinstance(leaf, TimeoutError | concurrent.futures.TimeoutError):
            why = f"did not start and list its tools within {timeout:g} s (startup_timeout)"
        elif isinstance(leaf, FileNotFoundError | PermissionError):
            why = f"could not be started: {leaf.strerror}: {leaf.filename or self.config.command}"
        elif isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED:
            why = "closed the connection before it was ready (did it exit?)"
        elif isinstance(leaf, httpx2.HTTPError):
            why = f"could not be reached: {type(leaf).__name__}: {leaf}"
        else:
            why = f"failed to start: {type(leaf).__name__}: {leaf}"
        tail = self._stderr_tail()
        return f"{why}{f'; its stderr ends: {tail}' if tail else ''}"

    def _stderr_tail(self, lines: int = 2, limit: int = 300) -> str:
        if self._errlog is None or self._errlog.closed:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._errlog.flush()
            self._errlog.seek(0)
            text = self._errlog.read()[-20_000:]
            tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
            return tail[-limit:]
        return ""


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    """Every tool the server lists, page by page."""
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str], connect_timeout: float) -> AsyncIterator[Any]:
    """Streamable HTTP with the configured headers (the SDK's default read timeout for long-lived streams)."""
    timeout = httpx2.Timeout(min(connect_timeout, 30.0), read=300.0)
    async with httpx2.AsyncClient(headers=headers or None, timeout=timeout) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            yield streams


def _leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
