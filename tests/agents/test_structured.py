"""Structured output with the scripted model: the method the backend allows, validation, one repair turn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.output_schema import load_output_schema
from ponder.agents.runner import run_agent
from ponder.agents.structured import OutputSchema, structure_answer
from ponder.core.errors import ModelError
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, Message, ModelCapabilities
from ponder.models.scripted import ScriptedModel

SCHEMA = {"title": "Sum", "type": "object", "properties": {"total": {"type": "integer"}}, "required": ["total"]}
TASK, ANSWER = "What is 2+3?", "5"


@pytest.fixture
def schema(tmp_path: Path) -> OutputSchema:
    path = tmp_path / "sum.json"
    path.write_text(json.dumps(SCHEMA))
    return load_output_schema(str(path))


def recording(replies: list[str], **caps: bool) -> tuple[ScriptedModel, list[GenerationParams]]:
    """A scripted model with ``caps`` that records the params of every call."""
    seen: list[GenerationParams] = []
    queue = list(replies)

    def reply(messages: list[Message], params: GenerationParams) -> str:
        seen.append(params)
        return queue.pop(0)

    model = ScriptedModel(reply)
    model.capabilities = ModelCapabilities(**caps)
    return model, seen


def test_valid_first_time(schema: OutputSchema) -> None:
    model, seen = recording(['Here you go: {"total": 5}'])
    result = structure_answer(model, GenerationParams(max_tokens=64, temperature=0.7), TASK, ANSWER, schema)
    assert (result.valid, result.value, result.method, result.attempts, result.errors) == (
        True, {"total": 5}, "text", 1, [])
    assert result.usage.model_calls == 1 and result.usage.completion_tokens > 0
    prompt = model.calls[0][-1]["content"]
    assert TASK in prompt and "Answer: 5" in prompt and '"total"' in prompt
    assert seen[0].temperature == 0.0 and seen[0].max_tokens >= 512 and seen[0].grammar is None


def test_a_repair_turn_shows_the_errors_and_fixes_it(schema: OutputSchema) -> None:
    model, _ = recording(['{"total": "five"}', '{"total": 5}'])
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
    assert result.valid and result.value == {"total": 5} and result.attempts == 2 and result.usage.model_calls == 2
    repair = model.calls[1]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert repair[1]["content"] == '{"total": "five"}' and "$.total" in repair[2]["content"]
    assert "'five' is not of type 'integer'" in repair[2]["content"]


def test_still_invalid_after_the_repair(schema: OutputSchema) -> None:
    model, _ = recording(["I cannot do JSON.", '{"sum": 5}'])
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
    assert not result.valid and result.value is None and result.attempts == 2
    assert result.errors == ["$: 'total' is a required property"]
    assert "no JSON value" in model.calls[1][-1]["content"]  # the first reply's problem was shown


def test_a_server_with_json_schema_gets_the_schema(schema: OutputSchema) -> None:
    model, seen = recording(['{"total": 5}'], json_schema=True, grammar=True)
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
    assert result.method == "json_schema" and seen[0].json_schema == SCHEMA and seen[0].grammar is None


def test_a_grammar_backend_gets_a_grammar_made_from_the_schema(schema: OutputSchema) -> None:
    model, seen = recording(['{"total": 5}'], grammar=True)
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
    assert result.method == "grammar" and result.valid
    assert seen[0].json_schema is None and '"\\"total\\""' in (seen[0].grammar or "")


def test_a_schema_the_converter_cannot_express_falls_back_to_any_json(tmp_path: Path) -> None:
    path = tmp_path / "not.json"
    path.write_text(json.dumps({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}))
    model, seen = recording(['{"a": "x"}', '{"a": 1}'], grammar=True)
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, load_output_schema(str(path)))
    assert result.method == "json_grammar" and result.valid and result.attempts == 2
    assert "root   ::= object" in (seen[0].grammar or "")


def test_run_agent_structures_the_final_answer(schema: OutputSchema, tmp_path: Path) -> None:
    model = ScriptedModel(["Final Answer: 5", '{"total": 5}'])
    settings = load_settings(out_dir=tmp_path)
    traj = run_agent(TASK, settings=settings, model=model, output_schema=schema)
    assert traj.final_answer == "5" and traj.output == {"total": 5}
    assert traj.metadata["output"] == {"valid": True, "method": "text", "attempts": 1, "errors": [], "schema": "Sum"}
    assert traj.usage.model_calls == 2
    record = json.loads((tmp_path / "trajectories.jsonl").read_text())
    assert record["output"] == {"total": 5} and record["metadata"]["output"]["valid"] is True


def test_an_invalid_object_keeps_the_run_and_its_answer(schema: OutputSchema, tmp_path: Path) -> None:
    model = ScriptedModel(["Final Answer: 5", "five", "still five"])
    traj = run_agent(TASK, settings=load_settings(out_dir=tmp_path), model=model, output_schema=schema, write=False)
    assert traj.status == "solved" and traj.final_answer == "5" and traj.output is None
    meta = traj.metadata["output"]
    assert meta["valid"] is False and meta["attempts"] == 2 and "no JSON value" in meta["errors"][0]
    assert traj.usage.model_calls == 3


def test_the_setting_is_the_default_and_no_answer_means_no_call(tmp_path: Path) -> None:
    path = tmp_path / "sum.json"
    path.write_text(json.dumps(SCHEMA))
    settings = load_settings(out_dir=tmp_path, output_schema=str(path), max_steps=1)
    model = ScriptedModel(["Thought: hmm\nAction: calculator\nAction Input: 2+3"])
    traj = run_agent(TASK, settings=settings, model=model, write=False)
    assert traj.final_answer is None and traj.output is None and len(model.calls) == 1
    assert traj.metadata["output"]["errors"] == ["the run ended without a final answer"]


def test_a_backend_failure_while_structuring_is_recorded(schema: OutputSchema, tmp_path: Path) -> None:
    def reply(messages: list[Message], params: GenerationParams) -> str:
        if "JSON Schema" in messages[-1]["content"]:  # the structuring call
            raise ModelError("connection refused")
        return "Final Answer: 5"

    traj = run_agent(TASK, settings=load_settings(out_dir=tmp_path), model=ScriptedModel(reply),
                     output_schema=schema, write=False)
    assert traj.final_answer == "5" and traj.output is None
    assert traj.metadata["output"]["errors"] == ["the model call failed: connection refused"]


def test_a_refused_schema_grammar_falls_back_to_any_json(schema: OutputSchema) -> None:
    grammars: list[str] = []

    def reply(messages: list[Message], params: GenerationParams) -> str:
        grammars.append(params.grammar or "")
        if "total-kv" in (params.grammar or ""):  # the grammar made from the schema
            raise ModelError("llama.cpp rejected the grammar (root rule 'root')")
        return '{"total": "5"}' if len(grammars) == 2 else '{"total": 5}'

    model = ScriptedModel(reply)
    model.capabilities = ModelCapabilities(grammar=True)
    result = structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
    assert result.method == "json_grammar" and result.valid and result.attempts == 2
    assert "total-kv" in grammars[0] and all("root   ::= object" in g for g in grammars[1:]) and len(grammars) == 3


def test_other_backend_failures_propagate(schema: OutputSchema) -> None:
    def reply(messages: list[Message], params: GenerationParams) -> str:
        raise ModelError("connection refused")

    model = ScriptedModel(reply)
    model.capabilities = ModelCapabilities(json_schema=True)
    with pytest.raises(ModelError, match="connection refused"):
        structure_answer(model, GenerationParams(), TASK, ANSWER, schema)
