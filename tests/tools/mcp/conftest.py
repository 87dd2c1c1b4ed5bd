"""Fixtures of the MCP client tests: real MCP server processes (our small test server, the npm 'everything'
server, an HTTP server on 127.0.0.1), each tagged with a marker so a test can check none is left running."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ponder.tools.mcp import close_mcp

sys.path.append(str(Path(__file__).resolve().parent))  # mcp_helpers, next to this file
from mcp_helpers import EVERYTHING, TEST_SERVER, free_port, wait_gone, wait_listening  # noqa: E402


@pytest.fixture
def marker() -> str:
    """A unique tag put on the command lines of this test's server processes."""
    return f"ponder-mcp-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def _closed_after(marker: str) -> Iterator[None]:
    """Close every MCP connection after each test and check its server processes are gone."""
    try:
        yield
    finally:
        close_mcp()
        left = wait_gone(marker, 5.0)
        for proc in left:
            proc.kill()
        assert not left, f"server processes left running: {[p.pid for p in left]}"


@pytest.fixture
def script_server(marker: str) -> Callable[..., dict[str, Any]]:
    """``script_server(mode="ok", **config)``: the ``[mcp.servers.NAME]`` table of the test server over stdio."""

    def config(mode: str = "ok", **extra: Any) -> dict[str, Any]:
        args = [str(TEST_SERVER), "--mode", mode, "--marker", marker]
        return {"command": sys.executable, "args": args, "startup_timeout": 15, "call_timeout": 10, **extra}

    return config


@pytest.fixture
def everything_server(marker: str) -> dict[str, Any]:
    """The table of the reference 'everything' MCP server (npm, installed by ``make mcp-servers``)."""
    if not EVERYTHING.is_file():
        pytest.skip("the MCP 'everything' server is not installed: run `make mcp-servers`")
    return {"command": "node", "args": [str(EVERYTHING), "stdio", marker], "startup_timeout": 20,
            "call_timeout": 10}


@pytest.fixture
def http_script_server(marker: str) -> Iterator[str]:
    """The test server over streamable HTTP on 127.0.0.1 (a real process, killed at the end); yields its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(TEST_SERVER), "--transport", "http", "--port", str(port),
                             "--marker", marker], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_listening(proc, port, "the HTTP test server", timeout=20)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        close_mcp()  # the client first: a session still open would wait for the server on its way out
        proc.kill()
        proc.wait(10)
