import json

import pytest

from ponder.agents.runner import run_agent
from ponder.core.errors import ModelError
from ponder.core.io import read_jsonl
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import ToolInputError


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def echo(text: str) -> str:
    """Repeat the text."""
    if text == "bad":
        raise ToolInputError("echo refuses 'bad'")
    if text == "bug":
        raise RuntimeError("a bug in our tool")
    return text.upper()


TOOLS = [add, echo]


def run(script, tmp_path, **overrides):
    model = ScriptedModel(script) if not isinstance(script, ScriptedModel) else script
    settings = load_settings(out_dir=tmp_path, **overrides)
    return run_agent("What is 2+3?", model=model, tools=TOOLS, settings=settings), model


def test_happy_path(tmp_path):
    traj, model = run([
        'Thought: add them\nAction: add\nAction Input: {"a": 2, "b": 3}\nObservation: 6 (hallucinated)',
        "Thought: I now know the final answer\nFinal Answer: 5",
    ], tmp_path)
    assert traj.status == "solved"
    assert traj.final_answer == "5"
    assert [s.kind for s in traj.steps] == ["action", "final"]
    assert traj.steps[0].observation == "5"
    # the model's own "Observation:" was cut by the stop sequence; the real one was sent back
    second_call = model.calls[1]
    assert second_call[-2] == {"role": "assistant",
                               "content": 'Thought: add them\nAction: add\nAction Input: {"a": 2, "b": 3}'}
    assert second_call[-1] == {"role": "user", "content": "Observation: 5"}
    assert "add: Add two integers." in second_call[0]["content"]
    assert traj.usage.model_calls == 2 and traj.usage.tool_calls == 1
    assert traj.usage.prompt_tokens > 0 and traj.usage.completion_tokens > 0


def test_record_written_and_loadable(tmp_path):
    traj, _ = run(["Final Answer: 5"], tmp_path)
    path = tmp_path / "trajectories.jsonl"
    assert traj.metadata["trajectory_path"] == str(path)
    (loaded,) = list(read_jsonl(path))
    assert loaded.id == traj.id and loaded.final_answer == "5" and loaded.status == "solved"


MALFORMED = [
    "",  # empty output
    "I think it is 5.",  # no action, no final answer
    "Thought: hmm\nThought: hmm\nThought: hmm",  # endless thoughts
    "Action: multiply\nAction Input: 2,3",  # unknown tool
    "Action: add",  # missing action input
    "Action: add\nAction Input:",  # empty action input
    "Final Answer:",  # empty final answer
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_output_becomes_observation_then_recovers(bad, tmp_path):
    traj, model = run([bad, "Final Answer: 5"], tmp_path)
    assert traj.status == "solved" and traj.final_answer == "5"
    assert traj.steps[0].kind == "parse_error"
    reminder = model.calls[1][-1]["content"]
    assert reminder.startswith("Observation: Invalid format:")
    assert "Final Answer:" in reminder and "add, echo" in reminder


@pytest.mark.parametrize(
    ("action_input", "expected"),
    [
        ('{"a": 2}', "Error: invalid arguments for add: b: Field required"),
        ("{not json", "Error: Action Input is not valid JSON"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "Error: Action Input is not valid JSON (too deeply nested"),
        ('{"a": ' + "9" * 5000 + ', "b": 1}', "Error: Action Input is not valid JSON (too deeply nested or too large"),
        ("2 and 3", "Error: add expects a JSON object with keys: a, b."),
        ('{"a": "two", "b": 3}', "Error: invalid arguments for add: a:"),
    ],
)
def test_bad_tool_arguments_become_observations(action_input, expected, tmp_path):
    traj, _ = run([f"Action: add\nAction Input: {action_input}", "Final Answer: 5"], tmp_path)
    assert traj.status == "solved"
    assert traj.steps[0].kind == "action"
    assert traj.steps[0].observation.startswith(expected)


def test_tool_input_error_is_observation(tmp_path):
    traj, _ = run(["Action: echo\nAction Input: bad", "Action: echo\nAction Input: ok", "Final Answer: OK"], tmp_path)
    assert traj.steps[0].observation == "Error: echo refuses 'bad'"
    assert traj.steps[1].observation == "OK"
    assert traj.status == "solved"


def test_text_after_final_answer_is_ignored(tmp_path):
    traj, _ = run(["Final Answer: 5\nAction: add\nAction Input: {\"a\": 1, \"b\": 1}"], tmp_path)
    assert traj.final_answer == "5" and len(traj.steps) == 1


def test_consecutive_parse_failures_end_cleanly(tmp_path):
    traj, model = run(ScriptedModel(["Thought: still thinking"], repeat_last=True), tmp_path,
                      max_parse_failures=3, max_steps=10)
    assert traj.status == "parse_error"
    assert len(traj.steps) == 3 and len(model.calls) == 3


def test_parse_failure_counter_resets_after_a_good_step(tmp_path):
    script = ["junk", "junk", 'Action: add\nAction Input: {"a": 1, "b": 1}', "junk", "junk", "Final Answer: 2"]
    traj, _ = run(script, tmp_path, max_parse_failures=3, max_steps=10)
    assert traj.status == "solved"


@pytest.mark.parametrize("max_steps", [1, 3, 60])
def test_max_steps_ends_cleanly(max_steps, tmp_path):
    model = ScriptedModel(['Action: add\nAction Input: {"a": 1, "b": 1}'], repeat_last=True)
    traj, _ = run(model, tmp_path, max_steps=max_steps)
    assert traj.status == "max_steps"
    assert len(traj.steps) == max_steps == len(model.calls)
    assert traj.final_answer is None


def test_max_steps_counts_parse_errors(tmp_path):
    traj, _ = run(ScriptedModel(["junk"], repeat_last=True), tmp_path, max_steps=2, max_parse_failures=5)
    assert traj.status == "max_steps" and len(traj.steps) == 2


def test_our_tool_bug_raises_and_keeps_the_record(tmp_path):
    with pytest.raises(RuntimeError, match="a bug in our tool"):
        run(["Action: echo\nAction Input: bug"], tmp_path)
    record = json.loads((tmp_path / "trajectories.jsonl").read_text())
    assert record["status"] == "error" and "a bug in our tool" in record["error"]


def test_backend_failure_raises_and_keeps_the_record(tmp_path):
    def broken(messages, params):
        raise ModelError("server unreachable")

    with pytest.raises(ModelError):
        run(ScriptedModel(broken), tmp_path)
    (loaded,) = list(read_jsonl(tmp_path / "trajectories.jsonl"))
    assert loaded.status == "error" and loaded.error == "ModelError: server unreachable"


def test_on_step_streams_steps_in_order(tmp_path):
    seen = []
    model = ScriptedModel(['Action: add\nAction Input: {"a": 1, "b": 2}', "Final Answer: 3"])
    run_agent("q", model=model, tools=TOOLS, settings=load_settings(out_dir=tmp_path), on_step=seen.append)
    assert [(s.index, s.kind) for s in seen] == [(0, "action"), (1, "final")]


def test_few_shot_turns_sent_when_their_tools_are_available(tmp_path):
    from ponder.tools.calculator import calculator_tool

    model = ScriptedModel(["Final Answer: 1"])
    run_agent("q", model=model, tools=[calculator_tool()], settings=load_settings(out_dir=tmp_path))
    roles = [m["role"] for m in model.calls[0]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Action: calculator" in model.calls[0][2]["content"]
    assert model.calls[0][-1] == {"role": "user", "content": "Question: q"}
    model = ScriptedModel(["Final Answer: 1"])
    run_agent("q", model=model, tools=TOOLS, settings=load_settings(out_dir=tmp_path))
    assert [m["role"] for m in model.calls[0]] == ["system", "user"]  # no calculator: no calculator example
