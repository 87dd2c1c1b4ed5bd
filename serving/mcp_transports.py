"""The transports of ``ponder mcp serve``: stdio (one client: the process that started us) and streamable HTTP.

stdio: the SDK's ``stdio_server`` points fd 1 at stderr while serving, so nothing but the protocol reaches
stdout (logs go to stderr). The server speaks the handshake era only (``serve_loop``): ponder's tools keep state
per client session. It ends at EOF on stdin, on SIGTERM, SIGINT or SIGHUP.

HTTP: the SDK's streamable-HTTP app (stateful sessions, ``Mcp-Session-Id``; DNS-rebinding protection on loopback)
under uvicorn, on a socket bound here so that ``--port 0`` works and the address is known before the first
request; the listening URL goes to stderr. A host that is not a loopback address must be allowed explicitly.
uvicorn stops on SIGTERM / SIGINT.

Either way, every client session's sandbox is closed before the function returns.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
from typing import TYPE_CHECKING

import anyio

from ponder.core.errors import ConfigError

if TYPE_CHECKING:
    from ponder.serving.mcp_server import PonderMCP

__all__ = ["MCP_PATH", "is_loopback", "serve_http", "serve_stdio"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
_GRACE_SECONDS = 3  # uvicorn's wait for open requests and streams at shutdown


def serve_stdio(mcp: PonderMCP) -> None:
    """Serve one client over stdin/stdout until EOF or a signal; then close its sandbox."""
    try:
        anyio.run(_stdio_main, mcp)
    finally:
        mcp.close()


async def _stdio_main(mcp: PonderMCP) -> None:
    from mcp.server.runner import serve_loop
    from mcp.server.stdio import stdio_server

    server = mcp.server
    async with anyio.create_task_group() as tg:
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        async with stdio_server() as (read, write), server.lifespan(server) as state:
            await serve_loop(server, read, write, lifespan_state=state,
                             init_options=server.create_initialization_options())
        logger.info("ponder mcp: stdin closed, stopping")
        tg.cancel_scope.cancel()


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            logger.info("ponder mcp: %s, stopping", signal.Signals(signum).name)
            scope.cancel()
            return


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve_http(mcp: PonderMCP, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False) -> None:
    """Serve any number of clients over streamable HTTP at ``http://host:port/mcp`` until SIGTERM / SIGINT.

    Raises:
        ConfigError: a host that is not loopback without ``allow_remote``, or an address that cannot be bound.
    """
    import uvicorn

    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise ConfigError(f"--host {host} is not a loopback address: anyone who can reach it could run code in "
                          "the sandbox and read the memory store; add --allow-remote to serve it anyway")
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    app = mcp.server.streamable_http_app(streamable_http_path=MCP_PATH, host=host if loopback else "0.0.0.0")
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=_GRACE_SECONDS,
                            server_header=False)
    if not loopback:
        print(f"ponder mcp: WARNING: serving on non-loopback {host}: no authentication; anyone who can reach "
              "this port can use the tools", file=sys.stderr, flush=True)
    print(f"ponder mcp: listening on http://{shown}:{bound}{MCP_PATH} (tools: {', '.join(mcp.names)})",
          file=sys.stderr, flush=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        mcp.close()
        logger.info("ponder mcp: stopped")
