"""The MCP client against a real third-party server: the reference 'everything' server from npm (Node)."""

from __future__ import annotations

from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.mcp import mcp_tools
from ponder.tools.schema import tool_definition


def test_list_call_and_errors_of_the_everything_server(everything_server):
    settings = load_settings(mcp={"servers": {"everything": {**everything_server, "prefix": "ev_"}}},
                             mcp_servers=["everything"])
    tools = {t.name: t for t in mcp_tools(settings)}
    assert {"ev_echo", "ev_get-sum", "ev_get-env", "ev_get-tiny-image"} <= set(tools)
    sum_tool = tools["ev_get-sum"]
    schema = sum_tool.args_schema.model_json_schema()
    assert schema["properties"]["a"] == {"type": "number", "description": "First number"}  # the server's, unchanged
    assert tool_definition(sum_tool)["function"]["parameters"]["required"] == ["a", "b"]
    box = ToolBox(tools.values())
    assert box.call("ev_echo", "hello from ponder").observation == "Echo: hello from ponder"
    assert box.call("ev_get-sum", '{"a": 2, "b": 40}').observation == "The sum of 2 and 40 is 42."
    image = box.call("ev_get-tiny-image", "{}").observation
    assert "[image: image/png, " in image and "bytes]" in image
    wrong = box.call("ev_get-sum", '{"a": 2}')  # refused by our schema check
    assert not wrong.ok and "b: Field required" in wrong.observation
    refused = box.call("ev_get-structured-content", '{"location": "Paris"}')  # the server's own validation
    assert not refused.ok and refused.observation.startswith("Error: ") and "Invalid option" in refused.observation
    assert box.call("ev_echo", "still fine").ok
    env = box.call("ev_get-env", "{}").observation
    assert '"PATH"' in env and "PONDER_" not in env and "HF_HUB_OFFLINE" not in env  # a minimal environment
