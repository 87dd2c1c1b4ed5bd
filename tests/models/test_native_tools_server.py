"""Native tool calling and JSON-Schema replies against real llama.cpp servers (SmolLM2-135M).

``llama_tool_server`` runs llama-cpp-python with the ``chatml-function-calling`` chat format (tools work),
``llama_server`` with the model's plain chat format (tools are ignored). The 135M model is weak, so the tests check
the machinery -- detection, the call's round trip through ReAct, the recorded protocol -- not its answers.
"""

from __future__ import annotations

import json

import pytest

from ponder.agents.runner import run_agent
from ponder.cli import main
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, Message
from ponder.models.openai import OpenAIBackend
from ponder.tools.base import ToolBox
from ponder.tools.calculator import calculator_tool

pytestmark = pytest.mark.integration

QUESTION = "What is 17 * 23? Use the calculator."


def backend(url: str) -> OpenAIBackend:
    return OpenAIBackend("smollm2", url, timeout=60, max_retries=1)


def test_detection_on_the_tool_server_and_the_plain_server(llama_tool_server, llama_server):
    tools = backend(llama_tool_server)
    assert tools.capabilities.tool_calls is True and tools.capabilities.json_schema is True
    plain = backend(llama_server)
    assert plain.capabilities.tool_calls is False  # it accepts tools and answers in text
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    ask: list[Message] = [{"role": "user", "content": "What is 2 + 2? Reply in JSON."}]
    [c] = tools.generate(ask, GenerationParams(json_schema=schema, max_tokens=24))
    assert isinstance(json.loads(c.text)["answer"], int)  # response_format honoured (json_object + schema)


def test_react_calls_the_calculator_natively_on_the_tool_server(llama_tool_server, tmp_path):
    settings = load_settings(out_dir=tmp_path, max_steps=1, max_tokens=48)
    traj = run_agent(QUESTION, model=backend(llama_tool_server), tools=[calculator_tool()], settings=settings)
    assert traj.metadata["tool_protocol"] == "native"
    [step] = traj.steps
    assert step.kind == "action" and step.action == "calculator" and step.tool_call_id
    arguments = json.loads(step.action_input or "")
    assert set(arguments) == {"expression"}
    assert step.observation == ToolBox([calculator_tool()]).call("calculator", step.action_input or "").observation


def test_the_cli_reports_the_protocol_native_on_the_tool_server_text_on_the_plain_one(
        llama_tool_server, llama_server, tmp_path, capsys):
    protocols = {}
    for name, url in (("tool", llama_tool_server), ("plain", llama_server)):
        code = main(["run", QUESTION, "--model", f"openai:smollm2@{url}", "--tools", "calculator",
                     "--max-steps", "1", "--max-tokens", "32", "--out", str(tmp_path), "--json"])
        out = capsys.readouterr().out
        assert code == 0, out
        protocols[name] = json.loads(out[out.index("{"):])["tool_protocol"]
    assert protocols == {"tool": "native", "plain": "text"}
