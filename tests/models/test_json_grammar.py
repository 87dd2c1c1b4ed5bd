"""JSON Schema → GBNF with llama.cpp's converter, and the any-JSON fallback for what it cannot express."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel

from ponder.models.json_grammar import any_json_grammar, schema_grammar


class Item(BaseModel):
    name: str
    qty: int


class Order(BaseModel):
    items: list[Item]
    note: str | None = None


def test_a_pydantic_schema_becomes_a_grammar_of_its_fields() -> None:
    grammar = schema_grammar(Order.model_json_schema())
    assert grammar is not None and grammar.kind == "schema" and grammar.reason == ""
    rules = dict(line.split(" ::= ", 1) for line in grammar.text.splitlines())
    assert rules["root"].startswith('"{" space items-kv') and "note-kv" in rules["root"]
    assert '"\\"qty\\""' in rules["Item-qty-kv"] and rules["Item-qty-kv"].endswith("integer")


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"not": {"type": "null"}}}},
    {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)a"}}},
    {"type": "object", "properties": {"a": {"$ref": "http://example.com/a.json"}}},
])
def test_unsupported_features_fall_back_to_any_json_object(schema: dict) -> None:
    grammar = schema_grammar(schema)
    assert grammar is not None and grammar.kind == "json" and grammar.reason
    assert grammar.text == any_json_grammar(object_root=True)


def test_a_non_object_schema_falls_back_to_any_json_value() -> None:
    grammar = schema_grammar({"not": {"type": "string"}})
    assert grammar is not None and grammar.kind == "json"
    assert "root ::= value" in grammar.text.splitlines() and "root   ::= object" not in grammar.text


def test_without_llama_cpp_there_is_no_grammar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now raises ImportError
    assert schema_grammar({"type": "integer"}) is None
