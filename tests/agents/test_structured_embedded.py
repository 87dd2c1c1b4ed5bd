"""Structured output on the real embedded model (SmolLM2-135M on llama.cpp): under the grammar made from the
schema its replies are schema-valid JSON (validity, not correctness, is what a 135M model can promise)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.agents.output_schema import OutputSchema, load_output_schema
from ponder.agents.structured import structure_answer
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, ModelBackend

pytestmark = pytest.mark.integration

MODELS = '''
from pydantic import BaseModel, Field

class City(BaseModel):
    city: str
    country: str

class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    languages: list[str]
'''
COLOR = {"title": "Color", "type": "object", "required": ["color", "confidence"],
         "properties": {"color": {"enum": ["red", "green", "blue"]},
                        "confidence": {"type": "number", "minimum": 0, "maximum": 1}}}
#: (task, answer, schema): the Person's list is where greedy decoding repeats an item (the grammar bounds it).
CASES = [("What is the capital of France?", "Paris", "models.py:City"),
         ("Describe Ada Lovelace.", "Ada Lovelace, 36 years old, wrote in English and French.", "models.py:Person"),
         ("What color is the sky?", "blue", "color.json")]


@pytest.fixture(scope="module")
def embedded() -> Iterator[ModelBackend]:
    from ponder.models.spec import load_model

    model = load_model("embedded", load_settings(model="embedded", llamacpp_threads=2))
    assert model.backend_name == "llamacpp" and model.capabilities.grammar, model.load_info
    yield model
    model.close()


@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("schemas")
    (folder / "models.py").write_text(MODELS)
    (folder / "color.json").write_text(json.dumps(COLOR))
    return folder


def load(folder: Path, source: str) -> OutputSchema:
    return load_output_schema(str(folder / source))


@pytest.mark.parametrize(("task", "answer", "source"), CASES)
def test_the_grammar_gives_schema_valid_json(embedded: ModelBackend, schemas: Path, task: str, answer: str,
                                             source: str) -> None:
    schema = load(schemas, source)
    result = structure_answer(embedded, GenerationParams(max_tokens=128), task, answer, schema, repair=False)
    assert result.method == "grammar" and result.attempts == 1
    assert result.valid, result.errors
    assert schema.validate(result.value) == (result.value, [])
    assert result.usage.completion_tokens < 512  # closed well before the token limit


def test_an_unconvertible_schema_still_gives_json(embedded: ModelBackend, tmp_path: Path) -> None:
    path = tmp_path / "not.json"
    path.write_text(json.dumps({"type": "object", "properties": {"city": {"not": {"type": "null"}}},
                                "required": ["city"]}))
    result = structure_answer(embedded, GenerationParams(), "Capital of France?", "Paris",
                              load_output_schema(str(path)), repair=False)
    assert result.method == "json_grammar"
    assert not any("no JSON value" in e for e in result.errors), result.errors  # JSON, valid or not
