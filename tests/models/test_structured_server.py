"""Structured output against the real llama.cpp server (llama-cpp-python, SmolLM2-135M): the server holds the reply
to the schema through ``response_format`` (detected once by the backend), and the object validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.output_schema import load_output_schema
from ponder.agents.structured import apply_output_schema, structure_answer
from ponder.core.records import Trajectory
from ponder.models.base import GenerationParams
from ponder.models.openai import OpenAIBackend

pytestmark = pytest.mark.integration

CITY = {"title": "City", "type": "object", "required": ["city", "country"], "additionalProperties": False,
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}}}
SUM = {"title": "Sum", "type": "object", "required": ["total"], "properties": {"total": {"type": "integer"}}}


@pytest.fixture(scope="module")
def served(llama_server: str) -> OpenAIBackend:
    return OpenAIBackend("smollm2", llama_server, timeout=60, max_retries=1)


def schema_file(tmp_path: Path, schema: dict) -> str:
    path = tmp_path / f"{schema['title']}.json"
    path.write_text(json.dumps(schema))
    return str(path)


def test_response_format_gives_schema_valid_json(served: OpenAIBackend, tmp_path: Path) -> None:
    assert served.capabilities.json_schema  # llama-cpp-python takes {"type": "json_object", "schema": ...}
    schema = load_output_schema(schema_file(tmp_path, CITY))
    result = structure_answer(served, GenerationParams(max_tokens=64), "What is the capital of France?", "Paris",
                              schema, repair=False)
    assert result.method == "json_schema" and result.attempts == 1
    assert result.valid, result.errors
    assert set(result.value) == {"city", "country"} and result.usage.prompt_tokens > 0


def test_a_run_record_gets_the_object(served: OpenAIBackend, tmp_path: Path) -> None:
    traj = Trajectory(task="What is 2+3?", agent="react", model=served.spec, final_answer="5", status="solved")
    apply_output_schema(traj, served, GenerationParams(), load_output_schema(schema_file(tmp_path, SUM)))
    meta = traj.metadata["output"]
    assert meta["valid"] is True and meta["method"] == "json_schema" and meta["schema"] == "Sum", meta
    assert isinstance(traj.output["total"], int) and traj.usage.model_calls == 1
