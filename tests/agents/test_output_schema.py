"""Loading ``--output-schema``: JSON Schema files, pydantic models from a file or a module, and one-line errors."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ponder.agents.output_schema import load_output_schema
from ponder.core.errors import ConfigError

PERSON = {"title": "Person", "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
MODEL_SOURCE = textwrap.dedent('''
    from pydantic import BaseModel, Field

    class City(BaseModel):
        name: str
        population: int = Field(ge=0)

    class Answer(BaseModel):
        city: City
        confidence: float

    NOT_A_MODEL = 3
''')


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_json_schema_file_validates_values(tmp_path: Path) -> None:
    schema = load_output_schema(write(tmp_path / "person.json", json.dumps(PERSON)))
    assert schema.name == "Person" and schema.schema == PERSON
    assert schema.validate({"name": "Ada", "age": 36}) == ({"name": "Ada", "age": 36}, [])
    value, errors = schema.validate({"name": "Ada", "age": "36", "extra": 1})
    assert value is None and len(errors) == 2
    assert any("$.age" in e and "integer" in e for e in errors) and any("extra" in e for e in errors)


def test_an_untitled_schema_is_named_after_its_file(tmp_path: Path) -> None:
    schema = load_output_schema(write(tmp_path / "answer.json", '{"type": "integer"}'))
    assert schema.name == "answer" and schema.validate(4) == (4, []) and schema.validate("4")[1]


def test_a_pydantic_model_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "models.py", MODEL_SOURCE)
    schema = load_output_schema(f"{path}:Answer")
    assert schema.name == "Answer" and "City" in schema.schema["$defs"]
    good = {"city": {"name": "Paris", "population": "2100000"}, "confidence": 0.9}
    value, errors = schema.validate(good)
    assert errors == [] and value == {"city": {"name": "Paris", "population": 2100000}, "confidence": 0.9}
    value, errors = schema.validate({"city": {"name": "Paris", "population": -1}})
    assert value is None and {e.split(":")[0] for e in errors} == {"city.population", "confidence"}


def test_a_pydantic_model_from_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "so_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "schemas.py").write_text(MODEL_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    schema = load_output_schema("so_pkg.schemas:City")
    assert schema.name == "City" and schema.source == "so_pkg.schemas:City"
    assert schema.validate({"name": "Oslo", "population": 700000})[1] == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: str(d / "missing.json"), "no such file"),
    (lambda d: write(d / "bad.json", '{"type": "object",'), "not valid JSON (line 1"),
    (lambda d: write(d / "list.json", "[1, 2]"), "must be a JSON object"),
    (lambda d: write(d / "invalid.json", '{"type": "integr"}'), "not a valid JSON Schema"),
    (lambda d: write(d / "invalid2.json", '{"properties": {"a": {"minimum": "zero"}}}'), "properties/a/minimum"),
    (lambda d: str(d / "missing.py") + ":Answer", "no such file"),
    (lambda d: write(d / "m.py", MODEL_SOURCE) + ":Nope", "m.py has no attribute 'Nope'"),
    (lambda d: write(d / "m.py", MODEL_SOURCE), "name the model in the file: "),
    (lambda d: write(d / "ref.json", '{"properties": {"a": {"$ref": "#/$defs/nope"}}}'), "cannot resolve $ref"),
    (lambda d: write(d / "remote.json", '{"$ref": "https://example.com/s.json"}'), "cannot resolve $ref"),
    (lambda d: write(d / "m.py", MODEL_SOURCE) + ":NOT_A_MODEL", "is not a pydantic model"),
    (lambda d: write(d / "boom.py", "raise RuntimeError('no\\nway')") + ":A", "RuntimeError: no way"),
    (lambda d: "no_such_package_xyz.mod:Model", "no module named 'no_such_package_xyz'"),
    (lambda d: "json:JSONDecoder", "is not a pydantic model"),
    (lambda d: "not a schema", "give a JSON Schema file"),
])
def test_bad_schemas_are_one_line_config_errors(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_output_schema(make(tmp_path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_reference_is_resolved_when_validating(tmp_path: Path) -> None:
    schema = load_output_schema(write(tmp_path / "defs.json", json.dumps(
        {"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"a": {"$ref": "#/$defs/n"}}})))
    assert schema.validate({"a": 1})[1] == []
    assert schema.validate({"a": "x"})[1]
