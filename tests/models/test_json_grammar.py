"""JSON Schema → GBNF with llama.cpp's converter, and the any-JSON fallback for what it cannot express."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel

from ponder.models.json_grammar import MAX_ITEMS, any_json_grammar, bounded_arrays, schema_grammar


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


def test_arrays_are_bounded_in_the_grammar_only() -> None:
    schema = {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "string"}},  # a property named like the keyword
        "pair": {"type": "array", "minItems": 40, "items": {"type": "integer"}},
        "fixed": {"type": "array", "maxItems": 2, "items": {"type": "integer"}},
        "enum": {"enum": [{"items": 1}]}}}
    bounded = bounded_arrays(schema)
    props = bounded["properties"]
    assert props["items"]["maxItems"] == MAX_ITEMS and "maxItems" not in bounded["properties"]
    assert props["pair"]["maxItems"] == 40 and props["fixed"]["maxItems"] == 2
    assert props["enum"] == {"enum": [{"items": 1}]} and "maxItems" not in schema["properties"]["items"]
    grammar = schema_grammar(schema)
    assert grammar is not None and grammar.kind == "schema"
    items_rule = next(line for line in grammar.text.splitlines() if line.startswith("items ::= "))
    assert items_rule.count('"," space string') == MAX_ITEMS - 1  # at most MAX_ITEMS strings


def test_embedded_rules_are_prefixed_so_two_schemas_share_one_grammar() -> None:
    LlamaGrammar = pytest.importorskip("llama_cpp").LlamaGrammar  # noqa: N806 - the class

    from ponder.models.json_grammar import MAX_STRING_CHARS, embedded_schema_rules

    first = embedded_schema_rules(Order.model_json_schema(), "t0-args")
    second = embedded_schema_rules({"type": "object", "properties": {"q": {"type": "string"}}}, "t1-args")
    assert first is not None and second is not None
    assert (first[0], second[0]) == ("t0-args-root", "t1-args-root")
    names = [line.split(" ::= ")[0] for line in f"{first[1]}\n{second[1]}".splitlines()]
    assert len(names) == len(set(names)) and all(n.startswith(("t0-args-", "t1-args-")) for n in names)
    rules = dict(line.split(" ::= ", 1) for line in second[1].splitlines())
    assert rules["t1-args-string"] == f'"\\"" t1-args-char{{0,{MAX_STRING_CHARS}}} "\\"" t1-args-space'
    assert "\\x00-\\x1F" in rules["t1-args-char"]  # no newline inside a one-line tool input
    LlamaGrammar.from_string(f"root ::= {first[0]} | {second[0]}\n{first[1]}\n{second[1]}", verbose=False)


def test_a_schema_the_converter_cannot_express_gives_no_embedded_rules() -> None:
    pytest.importorskip("llama_cpp")
    from ponder.models.json_grammar import embedded_schema_rules

    assert embedded_schema_rules({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "x") is None
