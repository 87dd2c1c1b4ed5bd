"""The MCP client over streamable HTTP against a real server process on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from mcp_helpers import processes_with

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.mcp import close_mcp, mcp_tools


def http_settings(url: str, **extra):
    return load_settings(mcp={"servers": {"web": {"url": url, "startup_timeout": 15, **extra}}}, mcp_servers=["web"])


def test_tools_over_http_are_called_and_errors_are_observations(http_script_server, marker):
    tools = mcp_tools(http_settings(http_script_server, headers={"X-Test": "1"}, call_timeout=1, prefix="web_"))
    box = ToolBox(tools)
    assert {"web_echo", "web_add", "web_fail"} <= set(box.names())
    assert box.call("web_add", '{"a": 20, "b": 22}').observation == "42"
    assert box.call("web_header", "X-Test").observation == "1"  # the configured headers are sent
    failed = box.call("web_fail", "over http")
    assert not failed.ok and "failed on purpose: over http" in failed.observation
    slow = box.call("web_sleep", "20")
    assert not slow.ok and "call_timeout" in slow.observation
    assert box.call("web_echo", "after the timeout").observation == "after the timeout"
    close_mcp()
    assert len(processes_with(marker)) == 1  # closing the client leaves an HTTP server it did not start running


def test_an_unreachable_url_is_a_one_line_config_error():
    from mcp_helpers import free_port

    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        mcp_tools(http_settings(f"http://127.0.0.1:{free_port()}/mcp", startup_timeout=5))
    assert "MCP server 'web' (http://127.0.0.1:" in str(err.value) and "\n" not in str(err.value)
    assert time.monotonic() - start < 10
