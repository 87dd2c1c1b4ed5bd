"""The kernel's skeleton on a toy agent (caps, memory no-op, node order), one task per agent step, and the
compiled-once agent graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langgraph.runtime import Runtime

from ponder.agents.context import AgentContext, Limits, model_step
from ponder.agents.kernel import AgentParts, agent_skeleton, call_model
from ponder.agents.pal import build_pal_graph
from ponder.agents.react import build_react_graph
from ponder.agents.runner import agent_graph, initial_state, run_agent
from ponder.agents.state import AgentState
from ponder.core.errors import ConfigError
from ponder.core.hashing import messages_sha256
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import ToolBox
from ponder.tools.executor import ExecResult


def toy_prefix(ctx: AgentContext) -> tuple[str, list[Any]]:
    return "You are a toy.", [{"role": "user", "content": "example"}, {"role": "assistant", "content": "done"}]


def toy_step(state: AgentState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    """Replies: ``done`` answers, ``act`` runs the tool (it answers ``ok``), anything else is malformed."""
    call = call_model(state, runtime.context, state["messages"], ())
    text, index = call.completion.text, len(state["steps"])
    if text == "done":
        step = model_step(index, "final", call.completion, call.seconds)
        return {"steps": [step], "status": "solved", "final_answer": "42"}
    if text == "act":
        step = model_step(index, "action", call.completion, call.seconds, action="tool", observation="ok")
        return {"steps": [step], "messages": step.to_messages(), "parse_failures": 0}
    step = model_step(index, "parse_error", call.completion, call.seconds, observation="say done or act")
    return {"steps": [step], "messages": step.to_messages(), "parse_failures": state.get("parse_failures", 0) + 1}


TOY = agent_skeleton(AgentParts(name="toy", state=AgentState, context=AgentContext, prefix=toy_prefix,
                                step=toy_step))


def play(replies: list[str], **limits: int) -> tuple[list[str], dict[str, Any], ScriptedModel]:
    """Run the toy agent; returns the nodes in the order they ran, the final state and the model."""
    model = ScriptedModel(replies, repeat_last=True)
    ctx = AgentContext(model=model, limits=Limits(**limits))
    nodes: list[str] = []
    final: dict[str, Any] = {}
    for mode, chunk in TOY.stream(initial_state("toy", "q"), {"recursion_limit": 100}, context=ctx,
                                  stream_mode=["updates", "values"]):
        if mode == "updates":
            nodes.extend(chunk)
        else:
            final = chunk
    return nodes, final, model


def test_skeleton_runs_recall_first_and_remember_last() -> None:
    nodes, final, model = play(["act", "done"])
    assert nodes == ["recall", "step", "step", "remember"]  # one task per agent step
    assert final["status"] == "solved" and [s.kind for s in final["steps"]] == ["action", "final"]
    # the prompt: the agent's prefix, then the question
    assert model.calls[0][0] == {"role": "system", "content": "You are a toy."}
    assert [m["content"] for m in model.calls[0][1:]] == ["example", "done", "Question: q"]


@pytest.mark.parametrize("max_steps", [1, 2, 5])
def test_step_cap_ends_the_run_with_max_steps(max_steps: int) -> None:
    nodes, final, model = play(["act"], max_steps=max_steps)
    assert final["status"] == "max_steps" and len(final["steps"]) == max_steps == len(model.calls)
    assert nodes[-2:] == ["max_steps", "remember"]


def test_parse_failure_cap_gives_up_after_that_many_in_a_row() -> None:
    nodes, final, _ = play(["junk"], max_parse_failures=3, max_steps=10)
    assert final["status"] == "parse_error" and len(final["steps"]) == 3
    assert nodes[-2:] == ["give_up", "remember"]
    _, recovered, _ = play(["junk", "junk", "act", "junk", "junk", "done"], max_parse_failures=3, max_steps=10)
    assert recovered["status"] == "solved"  # a good step resets the count


def test_step_cap_counts_malformed_replies_too() -> None:
    _, final, _ = play(["junk"], max_parse_failures=5, max_steps=2)
    assert final["status"] == "max_steps" and len(final["steps"]) == 2


def test_without_memory_recall_and_remember_only_set_the_prompt_prefix() -> None:
    _, final, _ = play(["done"])
    assert set(final["memory"]) == {"prefix", "prompt"}  # the prefix and its fingerprint (prompt_facts)
    assert final["memory"]["prefix"][0]["content"] == "You are a toy."
    assert final["memory"]["prompt"]["prompt_sha256"] == messages_sha256(final["memory"]["prefix"])


def test_agent_graphs_are_compiled_once_per_process() -> None:
    assert agent_graph("react") is build_react_graph() is agent_graph("react")
    assert agent_graph("pal") is build_pal_graph()
    with pytest.raises(ConfigError, match="unknown agent 'nope'"):
        agent_graph("nope")


def test_one_compiled_graph_serves_runs_with_different_models_and_tools(tmp_path: Path) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    before = build_react_graph.cache_info()
    first = ScriptedModel(['Action: add\nAction Input: {"a": 1, "b": 2}', "Final Answer: 3"])
    second = ScriptedModel(["Action: shout\nAction Input: hi", "Final Answer: HI"])
    settings = load_settings(out_dir=tmp_path)
    one = run_agent("1+2?", model=first, tools=[add], settings=settings, write=False)
    two = run_agent("shout hi", model=second, tools=[shout], settings=settings, write=False)
    after = build_react_graph.cache_info()
    assert after.misses == before.misses and after.hits >= before.hits + 2  # no new compilation
    assert (one.final_answer, one.steps[0].observation) == ("3", "3")
    assert (two.final_answer, two.steps[0].observation) == ("HI", "HI")
    # each run got its own tools in its system prompt
    assert "add:" in first.calls[0][0]["content"] and "shout" not in first.calls[0][0]["content"]
    assert "shout:" in second.calls[0][0]["content"] and "add:" not in second.calls[0][0]["content"]


def test_pal_without_an_executor_fails_before_any_model_call() -> None:
    model = ScriptedModel(["```python\ndef solution():\n    return 1\n```"])
    with pytest.raises(ConfigError, match="needs a code executor"):
        build_pal_graph().invoke(initial_state("pal", "q"), context=AgentContext(model=model))
    assert model.calls == []


class FixedExecutor:
    """A stand-in PAL executor: every program returns ``5`` after ``duration`` seconds; records the code it got."""

    def __init__(self) -> None:
        self.codes: list[str] = []

    def run(self, code: str) -> ExecResult:
        self.codes.append(code)
        return ExecResult(value="5", duration=0.25)

    def close(self) -> None:
        pass


def graph_nodes(graph: Any, state: dict[str, Any], ctx: AgentContext) -> tuple[list[str], dict[str, Any]]:
    """The nodes a run of ``graph`` ran, in order, and its final state."""
    nodes: list[str] = []
    final: dict[str, Any] = {}
    for mode, chunk in graph.stream(state, {"recursion_limit": 50}, context=ctx, stream_mode=["updates", "values"]):
        if mode == "updates":
            nodes.extend(chunk)
        else:
            final = chunk
    return nodes, final


def test_a_react_step_is_one_graph_task_holding_the_model_and_the_tool_call() -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    action = 'Thought: add\nAction: add\nAction Input: {"a": 1, "b": 2}'
    ctx = AgentContext(model=ScriptedModel([action, action, "Final Answer: 3"]), tools=ToolBox([add]))
    nodes, final = graph_nodes(build_react_graph(), initial_state("react", "1+2?"), ctx)
    assert nodes == ["recall", "step", "step", "step", "remember"]
    assert final["status"] == "solved" and "pending" not in final
    first = final["steps"][0]
    assert (first.kind, first.thought, first.action, first.action_input, first.observation) == (
        "action", "add", "add", '{"a": 1, "b": 2}', "3")
    assert first.tool_seconds > 0 and first.model_seconds > 0 and first.raw == action


def test_a_pal_step_is_one_graph_task_holding_the_model_call_and_the_program_run() -> None:
    executor = FixedExecutor()
    code = "def solution():\n    return 5"
    ctx = AgentContext(model=ScriptedModel(["no code here", f"```python\n{code}\n```"]), executor=executor)
    nodes, final = graph_nodes(build_pal_graph(), initial_state("pal", "q"), ctx)
    assert nodes == ["recall", "step", "step", "remember"]
    assert [s.kind for s in final["steps"]] == ["parse_error", "program"] and final["final_answer"] == "5"
    program = final["steps"][1]
    assert (program.action, program.action_input, program.observation, program.tool_seconds) == (
        "python", code, "5", 0.25)
    assert executor.codes == [f"{code}\n\nsolution()"]
