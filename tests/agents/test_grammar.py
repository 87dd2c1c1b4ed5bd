"""Which runs are grammar-constrained, and what reaches the backend (scripted model; the grammars themselves are
checked against llama.cpp in test_grammar_gbnf.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ponder.agents.env import run_env_agent
from ponder.agents.grammar import env_grammar, gbnf_literal, pal_grammar, react_grammar, wants_grammar
from ponder.agents.runner import run_agent
from ponder.core.environment import EnvReset, EnvStep
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, Message, ModelCapabilities
from ponder.models.scripted import ScriptedModel

ACTION = "Thought: multiply first\nAction: calculator\nAction Input: 12 * 7 + 5"
FINAL = "Thought: I now know the final answer\nFinal Answer: 89"


class Recorder:
    """A scripted model's response function that replays ``replies`` and records each call's parameters."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.params: list[GenerationParams] = []

    def __call__(self, messages: list[Message], params: GenerationParams) -> str:
        self.params.append(params)
        return self.replies.pop(0)


def scripted(replies: list[str], *, grammar: bool) -> tuple[ScriptedModel, Recorder]:
    recorder = Recorder(replies)
    model = ScriptedModel(recorder, spec=f"scripted-grammar-{grammar}")
    model.capabilities = ModelCapabilities(streaming=True, grammar=grammar)
    return model, recorder


def react_run(tmp_path: Path, mode: str, *, grammar: bool):
    model, recorder = scripted([ACTION, FINAL], grammar=grammar)
    settings = load_settings(out_dir=tmp_path, constrained_steps=mode, tools=["calculator"])
    return run_agent("What is 12 times 7 plus 5?", agent="react", settings=settings, model=model), recorder


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_the_react_grammar_reaches_a_backend_that_supports_grammars(tmp_path: Path, mode: str) -> None:
    traj, recorder = react_run(tmp_path, mode, grammar=True)
    assert traj.status == "solved" and traj.final_answer == "89"
    assert len(recorder.params) == 2
    expected = react_grammar(("calculator",), ())
    assert all(p.grammar == expected for p in recorder.params)
    assert all(p.stop == [] for p in recorder.params)  # the grammar ends the reply: no stop sequence can cut it
    assert traj.metadata["grammar"] == "react"


def test_off_never_constrains(tmp_path: Path) -> None:
    traj, recorder = react_run(tmp_path, "off", grammar=True)
    assert traj.status == "solved"
    assert all(p.grammar is None for p in recorder.params)
    assert all("Observation:" in p.stop for p in recorder.params)
    assert "grammar" not in traj.metadata


def test_auto_runs_free_on_a_backend_without_grammars(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        traj, recorder = react_run(tmp_path, "auto", grammar=False)
    assert traj.status == "solved" and all(p.grammar is None for p in recorder.params)
    assert "grammar" not in traj.metadata and not caplog.records


def test_on_without_grammar_support_warns_once_and_runs_free(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    model, recorder = scripted([ACTION, FINAL, ACTION, FINAL], grammar=False)
    model.spec = "scripted-no-grammar-on"
    settings = load_settings(out_dir=tmp_path, constrained_steps="on", tools=["calculator"])
    with caplog.at_level(logging.WARNING):
        first = run_agent("What is 12 times 7 plus 5?", settings=settings, model=model)
        second = run_agent("What is 12 times 7 plus 5?", settings=settings, model=model)
    assert first.status == second.status == "solved"
    assert all(p.grammar is None for p in recorder.params) and len(recorder.params) == 4
    warnings = [r for r in caplog.records if "does not support grammars" in r.getMessage()]
    assert len(warnings) == 1 and "scripted-no-grammar-on" in warnings[0].getMessage()


def test_wants_grammar_is_the_capability_unless_off() -> None:
    with_grammar, _ = scripted([], grammar=True)
    without, _ = scripted([], grammar=False)
    assert [wants_grammar(m, with_grammar) for m in ("auto", "on", "off")] == [True, True, False]
    assert [wants_grammar(m, without) for m in ("auto", "off")] == [False, False]


def test_auto_constrains_react_only_and_on_constrains_every_agent() -> None:
    with_grammar, _ = scripted([], grammar=True)
    assert [wants_grammar("auto", with_grammar, a) for a in ("react", "pal", "env")] == [True, False, False]
    assert [wants_grammar("on", with_grammar, a) for a in ("react", "pal", "env")] == [True, True, True]


def test_the_react_grammar_lists_exactly_the_run_tools() -> None:
    text = react_grammar(("calculator", "search"), ())
    assert '"Action: calculator\\nAction Input: " calc-input' in text
    assert '"Action: search\\nAction Input: " line-input' in text
    assert "Action: python" not in text
    several = react_grammar(("add",), ("add",))
    assert '"Action: add\\nAction Input: " json-input' in several
    assert "${" not in text and "${" not in several


def test_pal_runs_get_the_program_grammar(tmp_path: Path) -> None:
    program = "```python\ndef solution():\n    return 12 * 7 + 5\n```"
    model, recorder = scripted([program], grammar=True)
    settings = load_settings(out_dir=tmp_path, exec_timeout=5.0, constrained_steps="on")
    traj = run_agent("What is 12 times 7 plus 5?", agent="pal", settings=settings, model=model)
    assert traj.status == "solved" and traj.final_answer == "89"
    assert [p.grammar for p in recorder.params] == [pal_grammar()] and traj.metadata["grammar"] == "pal"


class DoorEnv:
    """Two admissible actions at first; ``open door`` wins."""

    name = "door"
    instructions = ""
    examples = ""

    def reset(self) -> EnvReset:
        return EnvReset(observation="A closed door.", admissible_actions=["open door", "look"])

    def step(self, action: str) -> EnvStep:
        if action == "open door":
            return EnvStep(observation="You win.", reward=1.0, done=True, info={"won": True})
        return EnvStep(observation="A closed door.", admissible_actions=None)

    def close(self) -> None:
        pass


def test_env_turns_are_constrained_to_the_admissible_actions_when_listed(tmp_path: Path) -> None:
    model, recorder = scripted(["think: the door is closed", "look", "think: try it", "open door"], grammar=True)
    model_steps = run_env_agent(DoorEnv(), "open the door", model=model,  # type: ignore[arg-type]
                                settings=load_settings(out_dir=tmp_path, constrained_steps="on"), max_steps=6)
    assert model_steps.success and model_steps.trajectory.metadata["grammar"] == "env"
    listed = env_grammar(["open door", "look"], 200)
    # think, look (both with the actions listed), then no list after "look": the free-action grammar
    assert [p.grammar for p in recorder.params] == [listed, listed, env_grammar(None, 200), env_grammar(None, 200)]
    assert 'action        ::= "open door" | "look"' in listed
    assert "action        ::= free-action" in env_grammar(None, 200)


def test_gbnf_literals_escape_quotes_backslashes_and_control_characters() -> None:
    assert gbnf_literal('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert gbnf_literal("a\nb\tc") == '"a\\nb\\x09c"'


def test_a_tool_whose_schema_cannot_be_converted_takes_any_json_object() -> None:
    pytest.importorskip("llama_cpp")  # the converter of argument schemas (installed by make test)
    from pydantic import BaseModel, ConfigDict

    from ponder.agents.grammar import JSON_INPUT, react_grammar_for
    from ponder.tools.base import ToolBox

    class Odd(BaseModel):
        model_config = ConfigDict(json_schema_extra={"properties": {"a": {"not": {"type": "string"}}, "b": {}}})
        a: object = None
        b: object = None

    class OddTool:
        name, description, args_schema = "odd", "takes odd arguments", Odd

        def run(self, args: BaseModel) -> str:
            return "ok"

    class Pair(BaseModel):
        a: int
        b: int

    class PairTool(OddTool):
        name, args_schema = "pair", Pair

    text = react_grammar_for(ToolBox([OddTool(), PairTool()])).text
    assert f'"Action: odd\\nAction Input: " {JSON_INPUT} |' in text
    assert '"Action: pair\\nAction Input: " tool1-args-root |' in text and "tool1-args-root ::=" in text
