"""Helpers of the MCP client tests: where the test servers are, and finding their processes."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

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


def wait_listening(proc: subprocess.Popen[bytes], port: int, what: str, timeout: float) -> None:
    """Wait until ``proc`` accepts connections on ``port`` of 127.0.0.1; fail the test (with its stderr) if it
    exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"{what} did not start: {err[-500:]}")
            time.sleep(0.05)
