"""Helpers of the MCP client tests: where the test servers are, and finding their processes."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
TEST_SERVER = HERE / "mcp_test_server.py"
REPO = HERE.parent.parent.parent
EVERYTHING = REPO / ".mcp-servers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"


def processes_with(marker: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(marker in part for part in cmdline):
            found.append(proc)
    return found


def wait_gone(marker: str, timeout: float = 10.0) -> list[psutil.Process]:
    """Wait until no process carries ``marker``; returns those still there after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
