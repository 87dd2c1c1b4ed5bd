"""A fresh toolbox replayed from a ReAct run's steps answers like the run's own tools did.

``search`` -> ``lookup`` (the lookup reads the page the search opened, and repeating a keyword walks on) and
python cells (variables live in the sandbox session): replaying the stateful calls into new tools gives the
run's observations, and a next call gives what the original tools would have given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.runner import run_agent
from ponder.core.records import Step
from ponder.core.settings import Settings, load_settings
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import ToolBox
from ponder.tools.registry import build_tools, close_tools
from ponder.tools.replay import STATELESS_TOOLS, replay_tool_calls, stateful_calls

DOCS = [
    {"id": "a", "title": "Ada Lovelace", "text": "Ada Lovelace was an English mathematician. She wrote the first "
     "published algorithm for the engine. Her notes on the engine include a method for Bernoulli numbers. "
     "The engine was designed by Babbage."},
    {"id": "b", "title": "Analytical Engine", "text": "The Analytical Engine was a proposed mechanical computer. "
     "It was first described in 1837."},
]


def _act(tool: str, text: str) -> str:
    return f"Thought: use {tool}\nAction: {tool}\nAction Input: {text}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n", encoding="utf-8")
    return load_settings(search_corpus=corpus, cache_dir=tmp_path / "cache", out_dir=tmp_path, search_k=2)


def _run(settings: Settings, names: list[str], replies: list[str]) -> list[Step]:
    tools = build_tools(names, settings)
    try:
        traj = run_agent("q", agent="react", settings=settings, model=ScriptedModel(replies), tools=tools,
                         write=False)
    finally:
        close_tools(tools)
    return traj.steps


def _observations(tools: ToolBox, steps: list[Step]) -> list[str | None]:
    return [s.observation for s in stateful_calls(tools, steps)]


def test_search_then_lookup_replays_to_the_same_observations(settings: Settings) -> None:
    replies = [_act("search", "Ada Lovelace"), _act("lookup", "engine"), _act("calculator", "2 + 3"),
               _act("nosuchtool", "x"), "gibberish without an action", _act("lookup", "engine"), "Final Answer: x"]
    steps = _run(settings, ["search", "lookup", "calculator"], replies)
    assert [s.kind for s in steps] == ["action"] * 3 + ["parse_error", "parse_error", "action", "final"]
    assert steps[5].observation is not None and "(Result 2 /" in steps[5].observation  # lookup walked on
    fresh = ToolBox(build_tools(["search", "lookup", "calculator"], settings))
    replayed = replay_tool_calls(fresh, steps)
    assert [s.action for s in stateful_calls(fresh, steps)] == ["search", "lookup", "lookup"]
    assert replayed == _observations(fresh, steps)
    # the replayed session is where the run's was: the next lookup is the third result in both
    assert fresh.call("lookup", "engine").observation.startswith("(Result 3 /")
    # and the replay matters: without the search first, lookup has no page
    bare = ToolBox(build_tools(["search", "lookup"], settings))
    assert replay_tool_calls(bare, [s for s in steps if s.action == "lookup"]) != replayed[1:]


def test_calculator_is_stateless_and_not_replayed() -> None:
    steps = [Step(index=0, kind="action", action="calculator", action_input="1+1", observation="2")]
    assert "calculator" in STATELESS_TOOLS
    assert replay_tool_calls(ToolBox(build_tools(["calculator"], load_settings())), steps) == []


def test_python_cells_replay_in_a_fresh_sandbox(settings: Settings) -> None:
    replies = [_act("python", "x = 41\nprint('set')"), _act("python", "x += 1\nprint(x)"), "Final Answer: 42"]
    steps = _run(settings, ["python"], replies)
    assert steps[1].observation is not None and "42" in steps[1].observation
    tools = build_tools(["python"], settings)
    try:
        box = ToolBox(tools)
        assert replay_tool_calls(box, steps) == [steps[0].observation, steps[1].observation]
        assert "43" in box.call("python", "x += 1\nprint(x)").observation  # the session carries the state on
    finally:
        close_tools(tools)
    fresh = build_tools(["python"], settings)
    try:  # the replay matters: a session that did not run the first cell has no x
        assert "NameError" in ToolBox(fresh).call("python", "x += 1\nprint(x)").observation
    finally:
        close_tools(fresh)
