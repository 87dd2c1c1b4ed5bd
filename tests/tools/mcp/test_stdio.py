"""The MCP client against a real server process over stdio: calls, errors, timeouts, starts that fail, cleanup."""

from __future__ import annotations

import os
import time

import pytest
from mcp_helpers import processes_with, wait_gone

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.mcp import close_mcp, mcp_tools
from ponder.tools.mcp.pool import open_servers
from ponder.tools.registry import build_tools
from ponder.tools.schema import tool_parameters


def settings_with(servers: dict, selected: list[str] | None = None, **extra):
    return load_settings(mcp={"servers": servers}, mcp_servers=selected or list(servers), **extra)


def test_tools_are_listed_with_the_servers_schema_and_called(script_server):
    tools = mcp_tools(settings_with({"t": script_server()}))
    by_name = {t.name: t for t in tools}
    assert {"echo", "add", "fail", "sleep", "env", "die", "dotted_name"} <= set(by_name)
    add = by_name["add"]
    assert add.description == "Add two integers."
    schema = add.args_schema.model_json_schema()
    assert schema["properties"]["a"]["type"] == "integer" and schema["required"] == ["a", "b"]
    assert tool_parameters(add)["properties"]["b"]["type"] == "integer"
    box = ToolBox(tools)
    result = box.call("add", '{"a": 2, "b": 40}')
    assert (result.observation, result.ok) == ("42", True)
    assert box.call("echo", "plain text for a one-input tool").observation == "plain text for a one-input tool"
    assert box.call("dotted_name", "{}").observation == "dotted ok"  # the server's 'dotted.name'


def test_a_tool_error_and_bad_arguments_are_observations(script_server):
    box = ToolBox(mcp_tools(settings_with({"t": script_server()})))
    failed = box.call("fail", "boom")
    assert not failed.ok and failed.observation.startswith("Error:") and "failed on purpose: boom" in failed.observation
    wrong = box.call("add", '{"a": "two", "b": 1}')
    assert not wrong.ok and "invalid arguments for add" in wrong.observation
    assert box.call("add", '{"a": 1, "b": 2}').observation == "3"  # the connection is still fine


def test_a_slow_call_times_out_as_an_observation_and_the_server_still_answers(script_server):
    box = ToolBox(mcp_tools(settings_with({"t": script_server(call_timeout=1)})))
    start = time.monotonic()
    slow = box.call("sleep", "30")
    took = time.monotonic() - start
    assert not slow.ok and "did not answer within 1 s (call_timeout)" in slow.observation
    assert took < 4
    assert box.call("echo", "still here").observation == "still here"


def test_a_dead_server_is_an_observation_and_the_next_run_reconnects(script_server, marker):
    settings = settings_with({"t": script_server()})
    box = ToolBox(mcp_tools(settings))
    died = box.call("die", "{}")
    assert not died.ok and "closed the connection" in died.observation
    again = box.call("echo", "x")
    assert not again.ok and "Error:" in again.observation
    assert open_servers() == []
    fresh = ToolBox(mcp_tools(settings))  # a new run opens a new connection
    assert fresh.call("echo", "back").observation == "back"


def test_a_server_that_exits_at_start_is_a_one_line_config_error(script_server):
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        mcp_tools(settings_with({"bad": script_server("exit")}))
    message = str(err.value)
    assert "MCP server 'bad'" in message and "\n" not in message
    assert "closed the connection before it was ready" in message and "refusing to start" in message
    assert time.monotonic() - start < 10


def test_a_server_that_never_answers_hits_the_startup_timeout(script_server, marker):
    start = time.monotonic()
    with pytest.raises(ConfigError, match=r"did not start and list its tools within 1 s \(startup_timeout\)"):
        mcp_tools(settings_with({"mute": script_server("hang", startup_timeout=1)}))
    assert time.monotonic() - start < 10
    assert not wait_gone(marker, 5)  # the hung process was killed


def test_a_missing_program_is_a_config_error():
    with pytest.raises(ConfigError, match=r"MCP server 'x' \(/no/such/mcp-server\) could not be started"):
        mcp_tools(settings_with({"x": {"command": "/no/such/mcp-server", "startup_timeout": 5}}))


def test_the_server_gets_a_minimal_environment_plus_its_env(script_server, monkeypatch):
    monkeypatch.setenv("PONDER_TEST_SECRET_TOKEN", "hunter2")
    box = ToolBox(mcp_tools(settings_with({"t": script_server(env={"GREETING": "hello"})})))
    assert box.call("env", "GREETING").observation == "hello"
    assert box.call("env", "PONDER_TEST_SECRET_TOKEN").observation == "<unset>"
    assert box.call("env", "PATH").observation == os.environ["PATH"]


def test_allowlist_and_prefix(script_server):
    tools = mcp_tools(settings_with({"t": script_server(tools=["add", "echo"], prefix="t_")}))
    assert [t.name for t in tools] == ["t_echo", "t_add"]
    assert ToolBox(tools).call("t_add", '{"a": 1, "b": 1}').observation == "2"
    with pytest.raises(ConfigError, match=r"MCP server 't' has no tool\(s\) nope .* it has: echo, add"):
        mcp_tools(settings_with({"t": script_server(tools=["nope"])}))


def test_duplicate_names_across_servers_suggest_a_prefix(script_server):
    with pytest.raises(ConfigError, match=r"two tools are named 'echo': MCP server 'a' .* and MCP server 'b'.*prefix"):
        mcp_tools(settings_with({"a": script_server(), "b": script_server()}))
    tools = mcp_tools(settings_with({"a": script_server(), "b": script_server(prefix="b_")}))
    names = [t.name for t in tools]
    assert len(names) == len(set(names)) and "echo" in names and "b_echo" in names


def test_a_clash_with_a_builtin_tool_suggests_a_prefix(script_server):
    settings = settings_with({"t": script_server(tools=["Calculator", "add"])})
    with pytest.raises(ConfigError, match=r"two tools are named 'Calculator': the built-in tools \('calculator'\) "
                       r"and MCP server 't'; set a prefix"):
        build_tools(["calculator"], settings)
    settings = settings_with({"t": script_server(tools=["Calculator", "add"], prefix="t_")})
    assert [t.name for t in build_tools(["calculator"], settings)] == ["calculator", "t_add", "t_Calculator"]


def test_connections_are_reused_and_closed(script_server, marker):
    settings = settings_with({"t": script_server()})
    first = mcp_tools(settings)
    pids = {p.pid for p in processes_with(marker)}
    assert len(pids) == 1
    second = mcp_tools(settings)
    assert {p.pid for p in processes_with(marker)} == pids  # one process per server per process
    assert ToolBox(second).call("echo", "again").observation == "again"
    assert first[0]._connection is second[0]._connection
    close_mcp()
    assert not wait_gone(marker, 5)
    assert ToolBox(mcp_tools(settings)).call("echo", "reopened").observation == "reopened"


def test_calls_from_many_threads_share_one_connection(script_server):
    from concurrent.futures import ThreadPoolExecutor

    box = ToolBox(mcp_tools(settings_with({"t": script_server()})))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: box.call("add", f'{{"a": {i}, "b": 1000}}'), range(40)))
    assert [r.observation for r in results] == [str(i + 1000) for i in range(40)]
