"""``ponder mcp serve`` as a real process, over stdio and streamable HTTP, driven by the official SDK's client.

Each client session gets its own sandbox session: state persists across its calls and is invisible to other
clients. Tool errors are ``isError`` results; hostile code stays in the sandbox; stopping the server (EOF on
stdin, SIGTERM) leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp.client.client import Client
from mcp.shared.exceptions import MCPError
from mcp_harness import INSIGHT, STOP_TIMEOUT, McpEnv, descendants, start_http, wait_gone
from mcp_types import UNSUPPORTED_PROTOCOL_VERSION

pytestmark = pytest.mark.server  # real server processes (and sandboxes): make test, not make test-fast

CALL_TIMEOUT = 60.0  # seconds for a whole client session (server start, sandbox start, calls)
SERVED = ["calculator", "python", "search", "lookup", "retrieve", "memory_search"]


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async test body under :data:`CALL_TIMEOUT`."""

    async def bounded() -> Any:
        with anyio.fail_after(CALL_TIMEOUT):
            return await fn()

    return anyio.run(bounded)


async def text(client: Client, name: str, arguments: dict[str, Any], *, error: bool = False) -> str:
    """Call a tool; check that it succeeded (or, with ``error``, failed as a tool result) and return its text."""
    result = await client.call_tool(name, arguments)
    assert result.is_error is error, result
    (content,) = result.content
    assert content.type == "text"
    return content.text


def test_stdio_lists_typed_tools_and_every_tool_answers(mcp_env: McpEnv) -> None:
    async def body() -> None:
        async with Client(mcp_env.stdio(), read_timeout_seconds=30) as client:
            assert client.protocol_version.startswith("2025")  # auto mode fell back to the handshake era
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert list(tools) == SERVED
            for t in tools.values():
                schema = t.input_schema
                assert schema["type"] == "object" and schema["required"] and len(t.description or "") > 40
                for prop in schema["properties"].values():
                    assert ("type" in prop or "anyOf" in prop) and prop["description"]
            assert tools["memory_search"].input_schema["properties"]["k"]["type"] == "integer"
            assert await text(client, "calculator", {"expression": "2^10 + 1"}) == "1025"
            assert "mountain building" in await text(client, "search", {"entity": "Colorado orogeny"})
            assert await text(client, "lookup", {"keyword": "eastern sector"}) == (
                "(Result 1 / 2) The eastern sector extends into the High Plains.")
            assert "Python (language)" in await text(client, "retrieve", {"query": "programming language Rossum"})
            assert INSIGHT in await text(client, "memory_search", {"query": "word problem mixes units", "k": 1})

    run(body)


def test_stdio_python_state_persists_within_the_client_session(mcp_env: McpEnv) -> None:
    async def body() -> None:
        async with Client(mcp_env.stdio("--tools", "python"), read_timeout_seconds=30) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["python"]
            assert await text(client, "python", {"code": "import math\nx = 40"}) == "(no output)"
            assert await text(client, "python", {"code": "print(x + 2, math.pi > 3)"}) == "42 True"
        async with Client(mcp_env.stdio("--tools", "python"), read_timeout_seconds=30) as other:
            assert "NameError" in await text(other, "python", {"code": "x"})

    run(body)


def test_errors_are_tool_results_and_the_server_keeps_serving(mcp_env: McpEnv) -> None:
    async def body() -> None:
        async with Client(mcp_env.stdio("--tools", "calculator,python,memory_search"),
                          read_timeout_seconds=30) as client:
            assert "expression: Field required" in await text(client, "calculator", {}, error=True)
            assert "valid string" in await text(client, "calculator", {"expression": 5}, error=True)
            assert "division by zero" in await text(client, "calculator", {"expression": "1/0"}, error=True)
            assert "unknown tool 'search'" in await text(client, "search", {"entity": "x"}, error=True)
            assert "less than or equal to 20" in await text(client, "memory_search", {"query": "a", "k": 99},
                                                            error=True)
            assert "timeout" in await text(client, "python", {"code": "while True:\n    pass"})
            assert await text(client, "python", {"code": "6 * 7"}) == "42"  # a fresh session after the kill
            assert await text(client, "calculator", {"expression": "3*3"}) == "9"

    run(body)


def test_memory_search_on_a_missing_store_is_a_clear_result(mcp_env: McpEnv, tmp_path: Path) -> None:
    missing = tmp_path / "no-store"

    async def body() -> str:
        params = mcp_env.stdio("--tools", "memory_search", "--memory-path", str(missing))
        async with Client(params, read_timeout_seconds=30) as client:
            return await text(client, "memory_search", {"query": "anything"})

    assert "empty" in run(body)
    assert not missing.exists()  # searching never creates a store


def test_http_sessions_have_their_own_sandbox(http_server: Any) -> None:
    async def body() -> None:
        async with Client(http_server.url, read_timeout_seconds=30) as one, \
                Client(http_server.url, read_timeout_seconds=30) as two:
            assert [t.name for t in (await one.list_tools()).tools] == SERVED
            await text(one, "python", {"code": "secret = 'one'"})
            await text(two, "python", {"code": "secret = 'two'"})
            assert await text(one, "python", {"code": "secret"}) == "'one'"
            assert await text(two, "python", {"code": "secret"}) == "'two'"
            assert await text(one, "search", {"entity": "Python (language)"}) != await text(
                two, "search", {"entity": "Colorado orogeny"})
            assert "Guido" in await text(one, "lookup", {"keyword": "Guido"})  # each lookup follows its own search
            assert "eastern" in await text(two, "lookup", {"keyword": "eastern"})
        async with Client(http_server.url, read_timeout_seconds=30) as three:
            assert "NameError" in await text(three, "python", {"code": "secret"})

    run(body)


def test_http_refuses_the_sessionless_protocol_era(http_server: Any) -> None:
    async def body() -> None:
        async with Client(http_server.url, mode="2026-07-28", read_timeout_seconds=30) as client:
            with pytest.raises(MCPError) as caught:
                await client.list_tools()
            assert caught.value.code == UNSUPPORTED_PROTOCOL_VERSION

    run(body)


def test_hostile_python_stays_in_the_sandbox(http_server: Any, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("TOP-SECRET-42", encoding="utf-8")
    planted = tmp_path / "planted-by-model.txt"
    code = (
        "import socket\nout = []\n"
        f"try:\n    out.append(open({str(secret)!r}).read())\nexcept OSError as e:\n    out.append('read failed')\n"
        f"try:\n    open({str(planted)!r}, 'w').write('x')\n    out.append('wrote')\n"
        "except OSError as e:\n    out.append('write failed')\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {http_server.port}), timeout=1)\n"
        "    out.append('connected')\n"
        "except OSError as e:\n    out.append('network failed')\n"
        "print(out)"
    )

    async def body() -> tuple[str, str]:
        async with Client(http_server.url, read_timeout_seconds=30) as client:
            return await text(client, "python", {"code": code}), await text(client, "calculator", {"expression": "1+1"})

    observed, after = run(body)
    assert observed == "['read failed', 'write failed', 'network failed']"
    assert "TOP-SECRET" not in observed and after == "2"  # the server itself carries on
    assert secret.read_text(encoding="utf-8") == "TOP-SECRET-42" and not planted.exists()  # the host is unharmed


def test_sigterm_closes_open_sessions_and_leaves_no_process(mcp_env: McpEnv) -> None:
    server = start_http(mcp_env, "--tools", "python", "-v")
    try:
        async def body() -> list[psutil.Process]:
            async with Client(server.url, read_timeout_seconds=30) as a, \
                    Client(server.url, read_timeout_seconds=30) as b:
                await text(a, "python", {"code": "a = 1"})
                await text(b, "python", {"code": "b = 1"})
                children = descendants(server.proc.pid)
                assert len(children) >= 2  # a sandbox per session
                assert server.stop() == 0  # while both sessions are open
                return children

        children = run(body)
        assert wait_gone(children) == []
        log = "".join(server.stderr)
        assert log.count("client session closed") == 2 and "SIGTERM" in log
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(5)


def test_stdio_server_ends_with_its_client_and_leaves_no_process(mcp_env: McpEnv) -> None:
    before = {p.pid for p in descendants(os.getpid())}

    async def body() -> list[psutil.Process]:
        async with Client(mcp_env.stdio("--tools", "python"), read_timeout_seconds=30) as client:
            await text(client, "python", {"code": "x = 1"})
            return [p for p in descendants(os.getpid()) if p.pid not in before]

    spawned = run(body)
    assert len(spawned) >= 2  # the server and its sandbox
    assert wait_gone(spawned) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--transport", "http", "--host", "0.0.0.0"], "not a loopback address"),
    (["--tools", "calculator,shell"], "unknown tool(s) shell"),
    (["--transport", "tcp"], "Invalid value for '--transport'"),
    (["--tools", ","], "no tools to serve"),
    (["--port", "9000"], "are for --transport http"),  # stdio has no port: not silently ignored
])
def test_bad_options_are_one_line_and_exit_2(mcp_env: McpEnv, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "ponder.cli", "mcp", "serve", *args], env=mcp_env.env,
                          cwd=mcp_env.root, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("ponder: error:") and message in line


def test_stdio_stdout_carries_only_the_protocol_and_sigterm_stops_cleanly(mcp_env: McpEnv) -> None:
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "python", "arguments": {"code": "import sys; print('to stdout'); print('x', file=sys.stderr)"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "memory_search", "arguments": {"query": "units"}}},
    ]
    proc = subprocess.Popen(mcp_env.command("--tools", "python,search,memory_search", "-v"), env=mcp_env.env,
                            cwd=mcp_env.root, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(4)]  # a line that is not JSON fails here
        assert sorted(r["id"] for r in replies) == [1, 2, 3, 4] and all(r["jsonrpc"] == "2.0" for r in replies)
        texts = {r["id"]: r["result"].get("content", [{}])[0].get("text") for r in replies}
        assert "to stdout" in texts[3] and INSIGHT in texts[4]
        spawned = descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=STOP_TIMEOUT)
        assert proc.returncode == 0 and out == ""  # nothing after the replies either
        assert "client session closed" in err and wait_gone(spawned) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize(("headers", "status"), [
    ({"Host": "attacker.example"}, 421),  # a DNS-rebinding page: its name resolves to 127.0.0.1
    ({"Origin": "http://attacker.example"}, 403),  # a web page posting across origins
])
def test_http_refuses_foreign_hosts_and_origins(http_server: Any, headers: dict[str, str], status: int) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "web", "version": "0"}}}
    request = urllib.request.Request(http_server.url, data=json.dumps(initialize).encode(), method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == status
