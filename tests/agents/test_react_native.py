"""ReAct over native tool calls (scripted model claiming capabilities.tool_calls)."""

from __future__ import annotations

import json
import logging

import pytest

from ponder.agents.budget import elidable
from ponder.agents.react_native import final_answer
from ponder.agents.runner import run_agent
from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.models.base import Completion, GenerationParams, Message, ToolCall
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import ToolBox
from ponder.tools.replay import replay_tool_calls


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


def shout(text: str) -> str:
    """Repeat the text in capitals."""
    return text.upper()


TOOLS = [add, shout]


def calls(*pairs: tuple[str, str], text: str = "") -> Completion:
    return Completion(text=text, tool_calls=[ToolCall(id=f"c{i}", name=n, arguments=a)
                                             for i, (n, a) in enumerate(pairs)])


class Recorder:
    """Replies in order and keeps the parameters of every call."""

    def __init__(self, *replies: Completion | str) -> None:
        self.replies, self.params = list(replies), []

    def __call__(self, messages: list[Message], params: GenerationParams) -> Completion | str:
        self.params.append(params)
        return self.replies.pop(0)


def run(recorder: Recorder, tmp_path, *, native: bool = True, **overrides):
    model = ScriptedModel(recorder, tool_calls=native)
    settings = load_settings(out_dir=tmp_path, **overrides)
    return run_agent("What is 2+3?", model=model, tools=TOOLS, settings=settings), model


def test_a_native_run_sends_definitions_runs_the_call_and_answers(tmp_path, caplog):
    recorder = Recorder(calls(("add", '{"a": 2, "b": 3}'), text="I add them."), Completion(text="Final Answer: 5"))
    with caplog.at_level(logging.INFO, logger="ponder.agents"):
        traj, model = run(recorder, tmp_path)
    assert traj.status == "solved" and traj.final_answer == "5"
    assert traj.metadata["tool_protocol"] == "native" and "grammar" not in traj.metadata
    acted = traj.steps[0]
    assert (acted.kind, acted.action, acted.tool_call_id, acted.observation) == ("action", "add", "c0", "5")
    assert json.loads(acted.action_input or "") == {"a": 2, "b": 3} and acted.thought == "I add them."
    params = recorder.params[0]
    assert params.tool_choice == "auto" and params.grammar is None and not any("Observation" in s for s in params.stop)
    add_def = params.tools[0]["function"]
    assert add_def["name"] == "add" and add_def["description"] == "Add two integers."
    assert add_def["parameters"]["properties"]["a"] == {"type": "integer", "description": "The first addend."}
    system = model.calls[0][0]["content"]
    assert "Action Input" not in system and "add, shout" in system
    second = model.calls[1]
    assert second[-2] == {"role": "assistant", "content": "I add them.", "tool_calls": [
        {"id": "c0", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]}
    assert second[-1] == {"role": "tool", "tool_call_id": "c0", "content": "5"}
    assert traj.usage.model_calls == 2 and traj.usage.tool_calls == 1
    assert sum("native function-calling" in r.getMessage() for r in caplog.records) <= 1


def test_the_models_mistakes_become_observations(tmp_path):
    recorder = Recorder(calls(("add", '{"a": 2,')), calls(("add", "[2, 3]")), calls(("divide", "{}")),
                        calls(("add", '{"a": 2}')), calls(("shout", '{"text": "hi"}'), ("add", '{"a": 1, "b": 1}')),
                        Completion(text="HI"))
    traj, _ = run(recorder, tmp_path)
    obs = [s.observation or "" for s in traj.steps[:-1]]
    assert "not valid JSON" in obs[0] and "not an object" in obs[1]
    assert "unknown tool 'divide'" in obs[2] and "b: Field required" in obs[3]
    assert obs[4].startswith("HI\n(Only this first of your 2 tool calls was run")
    assert traj.status == "solved" and traj.final_answer == "HI"
    assert all(s.tool_call_id for s in traj.steps[:-1])


def test_an_empty_reply_gets_a_reminder_and_counts_as_a_format_failure(tmp_path):
    traj, model = run(Recorder(Completion(text=" "), Completion(text="5")), tmp_path)
    assert [s.kind for s in traj.steps] == ["parse_error", "final"] and traj.final_answer == "5"
    assert "Call one of the tools (add, shout)" in model.calls[1][-1]["content"]


def test_auto_keeps_the_text_protocol_without_native_support_and_text_forces_it(tmp_path):
    traj, model = run(Recorder("Thought: done\nFinal Answer: 5"), tmp_path, native=False)
    assert traj.metadata["tool_protocol"] == "text" and "Action Input" in model.calls[0][0]["content"]
    recorder = Recorder("Final Answer: 5")
    traj, _ = run(recorder, tmp_path, tool_calling="text")
    assert traj.metadata["tool_protocol"] == "text" and recorder.params[0].tools is None


def test_native_on_a_backend_without_it_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="has no native tool calling") as err:
        run(Recorder("x"), tmp_path, native=False, tool_calling="native")
    assert "\n" not in str(err.value)


def test_a_jsonl_script_drives_the_native_path(tmp_path):
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps({"tool_calls": [{"id": "k", "name": "add", "arguments": {"a": 20, "b": 22}}]})
                      + "\n" + json.dumps("Final Answer: 42") + "\n")
    model = ScriptedModel.from_jsonl(script)
    assert model.capabilities.tool_calls
    traj = run_agent("q", model=model, tools=TOOLS, settings=load_settings(out_dir=tmp_path))
    assert traj.steps[0].tool_call_id == "k" and traj.steps[0].observation == "42" and traj.final_answer == "42"


def test_native_steps_replay_and_elide_like_text_steps(tmp_path):
    traj, _ = run(Recorder(calls(("shout", '{"text": "a"}')), calls(("shout", '{"text": "b"}')),
                           Completion(text="B")), tmp_path)
    assert replay_tool_calls(ToolBox(TOOLS), traj.steps) == ["A", "B"]
    history: list[Message] = [{"role": "user", "content": "q"}]
    for step in traj.steps[:-1]:
        history.extend(step.to_messages())  # type: ignore[arg-type]
    assert elidable(history, keep_last=1) == 1


def test_final_answer_takes_what_follows_the_final_answer_line():
    assert final_answer("Thought: easy\nFinal Answer: Paris\n") == "Paris"
    assert final_answer("  Paris is the capital.  ") == "Paris is the capital."
