"""viewer.prompt: the prompt of a step rebuilt from the prompt files, checked against the run's fingerprint."""

from __future__ import annotations

from ponder.agents.kernel import prompt_facts
from ponder.agents.react_native import native_system_prompt
from ponder.core.records import Step, Trajectory
from ponder.core.settings import load_settings
from ponder.training.prompt import agent_prefix, question_turn
from ponder.viewer.prompt import prompt_for_step

TOOLS = ["calculator"]


def steps() -> list[Step]:
    return [Step(index=0, kind="action", raw="Thought: add\nAction: calculator\nAction Input: 2+2",
                 action="calculator", action_input="2+2", observation="4"),
            Step(index=1, kind="parse_error", raw="hmm", observation="Use the format."),
            Step(index=2, kind="final", raw="Final Answer: 4")]


def recorded(agent: str, tools: list[str], lessons: str | None = None) -> dict[str, object]:
    """The metadata a run records, computed the way the kernel's recall node does (prompt_facts)."""
    prefix = agent_prefix(agent, tools, load_settings())
    return prompt_facts({"prefix": prefix, "lessons": lessons}, tools)


def traj(agent: str = "react", metadata: dict[str, object] | None = None, **fields: object) -> Trajectory:
    return Trajectory(task="What is 2+2?", agent=agent, model="m", steps=steps(),
                      metadata=recorded(agent, TOOLS) if metadata is None else metadata, **fields)


def test_a_react_prompt_is_rebuilt_exactly_up_to_the_step():
    run = traj()
    prefix = agent_prefix("react", TOOLS, load_settings())
    view = prompt_for_step(run, 1)
    assert view.exact is True and view.notes == []
    assert view.messages[: len(prefix)] == prefix and prefix[0]["role"] == "system"
    rest = view.messages[len(prefix):]
    assert rest[0] == question_turn("What is 2+2?")
    assert rest[1:] == [{"role": "assistant", "content": steps()[0].raw}, {"role": "user", "content": "Observation: 4"}]
    first = prompt_for_step(run, 0)
    assert first.messages == [*prefix, question_turn("What is 2+2?")] and first.exact is True
    assert all(set(m) == {"role", "content"} and isinstance(m["content"], str) for m in view.messages)


def test_a_pal_prompt_is_rebuilt_exactly():
    view = prompt_for_step(traj("pal", recorded("pal", [])), 0)
    assert view.exact is True and view.messages[0]["role"] == "system" and len(view.messages) == 2


def test_a_changed_fingerprint_is_not_exact_and_says_so():
    meta = {**recorded("react", TOOLS), "prompt_sha256": "0123456789abcdef"}
    view = prompt_for_step(traj(metadata=meta), 2)
    assert view.exact is False
    assert any("fingerprint differs" in note for note in view.notes)
    assert view.messages[0]["role"] == "system"  # still shown: the closest rebuild there is


def test_other_tools_change_the_fingerprint():
    meta = recorded("react", ["calculator", "python"])  # the run had python too
    assert prompt_for_step(traj(metadata=meta), 1).exact is True
    meta["tools"] = TOOLS  # a record claiming fewer tools than its fingerprint covers
    assert prompt_for_step(traj(metadata=meta), 1).exact is False


def test_reflexion_lessons_are_in_the_fingerprint_and_memory_is_noted():
    meta = recorded("react", TOOLS, lessons="Lessons from earlier attempts:\n- check the units")
    meta["memory"] = {"mode": "reflexion", "retrieved": [{"id": "r1", "kind": "reflection", "similarity": 0.9},
                                                         {"id": "r2", "kind": "reflection", "similarity": 0.8}]}
    view = prompt_for_step(traj(metadata=meta), 1)
    assert view.exact is False
    assert any("2 reflections" in note and "r1, r2" in note for note in view.notes)


def test_no_fingerprint_recorded():
    view = prompt_for_step(traj(metadata={"tools": TOOLS}), 1)
    assert view.exact is None and view.messages[0]["role"] == "system"
    assert any("no prompt fingerprint" in note for note in view.notes)


def test_env_and_unknown_agents_fall_back_to_the_question_and_steps():
    for agent in ("env", "mystery-agent"):
        view = prompt_for_step(traj(agent, {"tools": [], "prompt_sha256": "0123456789abcdef"}), 1)
        assert view.messages[0] == question_turn("What is 2+2?") and len(view.messages) == 3
        assert view.exact is False  # the run sent a system prompt that is not shown
        assert any("not rebuilt" in note and agent in note for note in view.notes)
    assert prompt_for_step(traj("env", {}), 1).exact is None


def test_an_unknown_tool_falls_back_with_a_note():
    view = prompt_for_step(traj(metadata={"tools": ["no_such_tool"], "prompt_sha256": "0123456789abcdef"}), 1)
    assert view.messages[0] == question_turn("What is 2+2?")
    assert view.exact is False
    assert any("could not be rebuilt" in note and "no_such_tool" in note for note in view.notes)


def test_k_beyond_the_steps_shows_every_step():
    run = traj()
    prefix_len = len(agent_prefix("react", TOOLS, load_settings()))
    view = prompt_for_step(run, 99)
    turns = view.messages[prefix_len + 1:]
    assert turns == [m for s in steps() for m in s.to_messages()]
    assert turns[-1] == {"role": "assistant", "content": "Final Answer: 4"}
    assert any("past the run's 3 steps" in note for note in view.notes)
    assert prompt_for_step(run, -5).messages == prompt_for_step(run, 0).messages


def test_native_tool_calls_and_elision():
    native = [Step(index=0, kind="action", raw="", action="calculator", action_input='{"expression": "2+2"}',
                   observation="4", tool_call_id="call_1")]
    prefix = [{"role": "system", "content": native_system_prompt(tuple(TOOLS))}]
    meta = {**prompt_facts({"prefix": prefix}, TOOLS), "elided_observations": 2}
    run = Trajectory(task="What is 2+2?", agent="react", model="m", steps=native, metadata=meta)
    view = prompt_for_step(run, 1)
    assert view.exact is True and view.messages[0] == prefix[0]
    assert view.messages[2]["role"] == "assistant" and '[tool call calculator: {"expression": "2+2"}]' in \
        view.messages[2]["content"]
    assert view.messages[3] == {"role": "tool", "content": "4"}
    assert any("elided up to 2" in note for note in view.notes)


def test_hostile_metadata_never_raises():
    meta = {"tools": "calculator", "prompt_sha256": 42, "memory": ["not", "a", "log"], "elided_observations": "x"}
    view = prompt_for_step(traj(metadata=meta), 1)
    assert view.exact is None and view.messages[0]["role"] == "system"  # default tools, fingerprint unusable
    weird = {"tools": [None, 3], "memory": {"retrieved": [1, {"kind": None}]}}
    assert prompt_for_step(traj(metadata=weird), 1).messages[0] == question_turn("What is 2+2?")
