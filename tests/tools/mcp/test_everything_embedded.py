"""The real embedded model (SmolLM2-135M on llama.cpp) calls a real third-party MCP tool through the text protocol:
the ReAct grammar holds its Action Input to the tool's argument schema, so every call it makes is one the server
accepts (without the typed rules most of its calls were malformed: benchmarks/mcp_tool_inputs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ponder.agents.runner import run_agent
from ponder.core.settings import load_settings
from ponder.tools.mcp import mcp_tools

pytestmark = pytest.mark.integration


def test_the_embedded_models_mcp_calls_follow_the_tools_schema(everything_server: dict[str, Any], tmp_path) -> None:
    settings = load_settings(mcp={"servers": {"ev": {**everything_server, "tools": ["get-sum"]}}}, mcp_servers=["ev"],
                             model="embedded", llamacpp_threads=2, max_steps=2, max_tokens=96, out_dir=tmp_path)
    traj = run_agent("What is the sum of 19 and 23? Use the get-sum tool.", settings=settings,
                     tools=mcp_tools(settings))
    assert traj.metadata["grammar"] == "react" and traj.metadata["tool_protocol"] == "text"
    calls = [s for s in traj.steps if s.kind == "action"]
    assert calls and all(s.action == "get-sum" for s in calls)
    assert all((s.observation or "").startswith("The sum of ") for s in calls), [s.action_input for s in calls]
