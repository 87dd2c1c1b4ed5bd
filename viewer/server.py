"""Serving the viewer: uvicorn on 127.0.0.1, the address printed once the socket is bound."""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

from ponder.core.errors import ConfigError
from ponder.core.viewlinks import HOST


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free port).

    Raises:
        ConfigError: when the port is taken or not allowed.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise ConfigError(f"port {port} on {HOST} {why}; pick another with --port (0: any free port)") from None
    sock.listen(128)
    return sock


def serve(roots: list[Path], *, port: int, poll_seconds: float = 2.0) -> None:
    """Serve the viewer over ``roots`` until interrupted.

    Raises:
        DataError: for a folder that does not exist.
        ConfigError: for a port that cannot be bound.
    """
    import uvicorn

    from ponder.viewer.app import create_app

    app = create_app(roots, poll_seconds=poll_seconds)
    sock = bind(port)
    address = f"http://{HOST}:{sock.getsockname()[1]}/"
    runs = len(app.state.catalog.runs())
    print(f"ponder view: {runs} run folder{'s' * (runs != 1)} under {', '.join(map(str, roots))}; "
          f"open {address} (Ctrl-C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        sys.stdout.flush()
