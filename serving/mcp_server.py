"""``ponder mcp serve``: ponder's tools as a Model Context Protocol server (the official ``mcp`` SDK, low-level API).

:func:`build_mcp_server` turns :class:`~ponder.core.settings.Settings` and a tool list into a :class:`PonderMCP`:
an ``mcp.server.Server`` whose ``tools/list`` gives each tool's JSON Schema (types and descriptions, from its
pydantic argument model) and whose ``tools/call`` runs the tool in a worker thread. The transports (stdio,
streamable HTTP) are in :mod:`ponder.serving.mcp_transports`.

State is per client session (:mod:`ponder.serving.mcp_session`): the first call on a connection opens that
client's :class:`~ponder.serving.mcp_session.ToolSession` (its own sandbox session and search state), which is
closed when the connection ends (stdio EOF, HTTP ``DELETE`` or idle timeout) or the server stops. The
2026-07-28 protocol era has no sessions (every request stands alone), so the server answers its requests with
``-32022`` naming the handshake versions: SDK clients in ``auto`` mode then fall back to the ``initialize``
handshake, which has them.

Errors: bad arguments and the tools' own errors (:class:`~ponder.tools.base.ToolInputError`, a sandbox that
cannot start, a memory store that fails) are tool results with ``isError`` set, never protocol errors or crashes.
Model-written code only runs in the sandbox (the ``python`` tool), never in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from ponder.core.errors import ConfigError, PonderError
from ponder.serving.mcp_memory import MemorySearchTool
from ponder.serving.mcp_session import SEARCH_TOOLS, SessionRegistry, ToolSession
from ponder.tools.base import ToolInputError

if TYPE_CHECKING:
    from mcp.server.connection import Connection

    from ponder.core.settings import Settings
    from ponder.tools.base import Tool

__all__ = ["DEFAULT_TOOLS", "SERVABLE_TOOLS", "PonderMCP", "build_mcp_server", "parse_tool_names"]

logger = logging.getLogger(__name__)

SERVABLE_TOOLS = ("calculator", "python", "search", "lookup", "retrieve", "memory_search")
DEFAULT_TOOLS = SERVABLE_TOOLS
_STATE_KEY = "ponder.tools"
_READ_ONLY = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
_ANNOTATIONS = {
    "calculator": types.ToolAnnotations(title="Calculator", read_only_hint=True, idempotent_hint=True,
                                        open_world_hint=False),
    "python": types.ToolAnnotations(title="Python sandbox", read_only_hint=False, destructive_hint=False,
                                    open_world_hint=False),
}


def parse_tool_names(text: str | Sequence[str]) -> list[str]:
    """``"calculator,python"`` (or a list) as tool names, checked and without repeats.

    Raises:
        ConfigError: for an empty list or a name ponder cannot serve.
    """
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in SERVABLE_TOOLS]
    if unknown:
        raise ConfigError(f"unknown tool(s) {', '.join(unknown)}; available: {', '.join(SERVABLE_TOOLS)}")
    if not names:
        raise ConfigError(f"no tools to serve; choose from: {', '.join(SERVABLE_TOOLS)}")
    return list(dict.fromkeys(names))


def _shared_tools(names: Sequence[str], settings: Settings) -> dict[str, Tool]:
    """The stateless tools, built once per server."""
    shared: dict[str, Tool] = {}
    if "calculator" in names:
        from ponder.tools.calculator import calculator_tool

        shared["calculator"] = calculator_tool()
    if "memory_search" in names:
        memory = MemorySearchTool(settings)
        memory.warm_up()
        shared["memory_search"] = memory
    return shared


def _input_schema(t: Tool) -> dict[str, Any]:
    """The tool's arguments as a JSON Schema object (types, descriptions, defaults, bounds)."""
    schema = t.args_schema.model_json_schema()
    schema.setdefault("type", "object")
    schema.pop("title", None)
    schema.pop("description", None)  # the argument model's docstring; the tool's description says more
    return schema


def _connection(ctx: ServerRequestContext[Any]) -> Connection:
    """The client connection of a request.

    mcp 2.3.0 gives low-level handlers the connection (its ``state`` and its ``exit_stack``, unwound when the
    connection ends) only through the request's ``ServerSession``; ``Context.connection`` is not built for them yet.
    """
    return ctx.session._connection  # noqa: SLF001 - the SDK's per-connection state, see the docstring


@dataclass
class PonderMCP:
    """ponder's MCP server: the SDK server, the served tool names, and the per-client sessions.

    Attributes:
        server: The ``mcp.server.Server`` (hand it to a transport).
        names: The served tools, in order.
        settings: The settings the tools were built from.
        shared: The stateless tools, shared by all clients.
        sessions: The open client sessions.
    """

    server: Server[Any]
    names: list[str]
    settings: Settings
    shared: dict[str, Tool]
    sessions: SessionRegistry = field(default_factory=SessionRegistry)
    definitions: list[types.Tool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.definitions = self._definitions()

    def _definitions(self) -> list[types.Tool]:
        """The MCP tool definitions (from a session that is built for its schemas and never run)."""
        catalog = ToolSession(self.names, self.settings, self.shared)
        try:
            return [types.Tool(name=t.name, description=t.description, input_schema=_input_schema(t),
                               annotations=_ANNOTATIONS.get(t.name, _READ_ONLY)) for t in catalog.tools.values()]
        finally:
            catalog.close()

    async def session_for(self, ctx: ServerRequestContext[Any]) -> ToolSession:
        """The calling client's tool session, opened on its first call and closed with its connection."""
        connection = _connection(ctx)
        session = connection.state.get(_STATE_KEY)
        if session is None:
            session = self.sessions.open(self.names, self.settings, self.shared)
            connection.state[_STATE_KEY] = session

            async def close() -> None:
                await anyio.to_thread.run_sync(self.sessions.close, session)

            connection.exit_stack.push_async_callback(close)
        return session

    def close(self) -> None:
        """Close every client session and the shared tools (the memory store)."""
        closed = self.sessions.close_all()
        if closed:
            logger.info("closed %d client session(s) at shutdown", closed)
        for t in self.shared.values():
            if isinstance(t, MemorySearchTool):
                t.close()


async def _call_tool(mcp: PonderMCP, ctx: ServerRequestContext[Any],
                     params: types.CallToolRequestParams) -> types.CallToolResult:
    """Run one tool call; the client's and the tools' errors become ``isError`` results."""
    session = await mcp.session_for(ctx)
    try:
        text = await anyio.to_thread.run_sync(session.call, params.name, params.arguments, abandon_on_cancel=True)
        error = False
    except ToolInputError as exc:
        text, error = f"Error: {exc}", True
    except PonderError as exc:
        logger.warning("tool %s failed: %s", params.name, exc)
        text, error = f"Error: {params.name} failed: {exc}", True
    except Exception as exc:  # a bug of ours: reported to the client and logged, never the server's end
        logger.exception("tool %s raised", params.name)
        text, error = f"Error: internal error in {params.name}: {type(exc).__name__}: {exc}", True
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)


class HandshakeEraOnly:
    """Middleware refusing 2026-07-28 requests (no sessions there), so that clients use the handshake era."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        """Refuse a modern-era request with -32022 naming the handshake versions; pass the rest on."""
        if ctx.request_id is not None and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(types.UNSUPPORTED_PROTOCOL_VERSION,
                           "ponder's tools keep state per client session: use the initialize handshake",
                           {"supported": list(HANDSHAKE_PROTOCOL_VERSIONS), "requested": ctx.protocol_version})
        return await call_next(ctx)


def build_mcp_server(settings: Settings, names: Sequence[str] = DEFAULT_TOOLS) -> PonderMCP:
    """Build ponder's MCP server for ``names`` from ``settings``.

    Builds the tools once, so that a bad configuration (an unknown tool, a missing search corpus) fails here,
    before any client connects.

    Raises:
        ConfigError: an unknown tool name. DataError: the search corpus is missing or malformed.
    """
    from ponder import __version__

    names = parse_tool_names(names)
    # ponder's own tools only: MCP servers named in the settings (ponder.toml's mcp_servers) are for agents, and
    # every client session would otherwise open client connections to them (to this server itself, even)
    settings = settings.model_copy(update={"mcp_servers": []})
    if any(n in SEARCH_TOOLS for n in names):
        from ponder.tools.search.index import get_index

        get_index(settings)  # loaded (or built and cached) once per process, now rather than on a first call
    mcp: PonderMCP

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=mcp.definitions)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
        return await _call_tool(mcp, ctx, params)

    instructions = f"ponder's tools: {', '.join(names)}."
    if "python" in names:
        instructions += " The python tool's variables persist between your calls (one sandbox per client session)."
    server: Server[Any] = Server("ponder", version=__version__, title="ponder tools", instructions=instructions,
                                 on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(HandshakeEraOnly())
    mcp = PonderMCP(server=server, names=list(names), settings=settings, shared=_shared_tools(names, settings))
    return mcp
