"""The transports of ``ponder mcp serve``: stdio (one client: the process that started us) and streamable HTTP.

stdio: the SDK's ``stdio_server`` points fd 1 at stderr while serving, so nothing but the protocol reaches
stdout (logs go to stderr). The server speaks the handshake era only (``serve_loop``): ponder's tools keep state
per client session. It ends at EOF on stdin, on SIGTERM, SIGINT or SIGHUP.

HTTP: the SDK's streamable-HTTP app (stateful sessions, ``Mcp-Session-Id``; DNS-rebinding protection on loopback;
at most :data:`MAX_SESSIONS` sessions, one idle for 30 minutes is closed) under uvicorn, on a socket bound here so
that ``--port 0`` works and the address is known before the first request; the listening URL goes to stderr. A
host that is not a loopback address must be allowed explicitly. uvicorn stops on SIGTERM / SIGINT.

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
from mcp.server.transport_security import TransportSecuritySettings

from ponder.core.errors import ConfigError

if TYPE_CHECKING:
    from ponder.serving.mcp_server import PonderMCP

__all__ = ["MCP_PATH", "check_host", "is_loopback", "serve_http", "serve_stdio"]

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
_GRACE_SECONDS = 3  # uvicorn's wait for open requests and streams at shutdown
MAX_SESSIONS = 32  # open client sessions (each may hold a sandbox); more get 503 until one ends or idles out


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


def check_host(host: str, *, allow_remote: bool) -> None:
    """Refuse a host that is not loopback unless ``allow_remote``.

    Raises:
        ConfigError: when it is refused.
    """
    if not allow_remote and not is_loopback(host):
        raise ConfigError(f"--host {host} is not a loopback address: anyone who can reach it could run code in "
                          "the sandbox and read the memory store; add --allow-remote to serve it anyway")


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


class _Stop(Exception):  # noqa: N818 - a signal, not an error
    """SIGTERM / SIGINT after uvicorn's graceful shutdown: end :func:`serve_http` normally."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def _security(host: str, loopback: bool) -> TransportSecuritySettings:
    """DNS-rebinding protection on loopback: only requests naming a loopback host (and origin) are served."""
    if not loopback:  # reached by other names: the Host header cannot be checked (explicit: the SDK's default is on)
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = list(dict.fromkeys([host, "127.0.0.1", "localhost", "[::1]"]))
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=[f"{h}:*" for h in hosts],
                                     allowed_origins=[f"http://{h}:*" for h in hosts])


def serve_http(mcp: PonderMCP, host: str = "127.0.0.1", port: int = 8765, *, allow_remote: bool = False) -> None:
    """Serve any number of clients over streamable HTTP at ``http://host:port/mcp`` until SIGTERM / SIGINT.

    Raises:
        ConfigError: a host that is not loopback without ``allow_remote``, or an address that cannot be bound.
    """
    import uvicorn

    check_host(host, allow_remote=allow_remote)
    loopback = is_loopback(host)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    app = mcp.server.streamable_http_app(streamable_http_path=MCP_PATH, transport_security=_security(shown, loopback),
                                         max_sessions=MAX_SESSIONS)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=_GRACE_SECONDS,
                            server_header=False)
    if not loopback:
        print(f"ponder mcp: WARNING: serving on non-loopback {host}: no authentication; anyone who can reach "
              "this port can use the tools", file=sys.stderr, flush=True)
    print(f"ponder mcp: listening on http://{shown}:{bound}{MCP_PATH} (tools: {', '.join(mcp.names)})",
          file=sys.stderr, flush=True)
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        uvicorn.Server(config).run(sockets=[sock])  # it shuts down gracefully, then raises the signal again
    except _Stop as stop:
        logger.info("ponder mcp: %s, stopped", signal.Signals(stop.signum).name)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        mcp.close()
