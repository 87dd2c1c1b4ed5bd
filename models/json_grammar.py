"""GBNF grammars for JSON output: a JSON Schema turned into a grammar by llama.cpp's own converter.

Backends that honour grammars (``capabilities.grammar``: the in-process llama.cpp backend, servers that take a
grammar) can be held to a JSON Schema by the grammar :func:`schema_grammar` makes with
``llama_cpp.llama_grammar.json_schema_to_gbnf`` (the converter llama.cpp's server uses for ``response_format``).
The converter does not know every schema feature (``not``, lookaround patterns, remote ``$ref`` ...): for those,
:func:`schema_grammar` falls back to a grammar of any JSON value (an object when the schema asks for one), so the
reply is still JSON and the caller's validation catches what the grammar could not enforce.

Arrays without a ``maxItems`` are held to :data:`MAX_ITEMS` items in the grammar (the schema itself is not changed):
a small model decoding greedily can repeat an array item until the token limit cuts the JSON off.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger("ponder.models")

#: How the grammar holds the reply: to the schema itself, or (a schema feature the converter lacks) to any JSON.
GrammarKind = Literal["schema", "json"]
#: The most items an array without ``maxItems`` may have in a grammar made from a schema.
MAX_ITEMS = 32
#: What llama.cpp's converter raises for a schema it cannot express.
CONVERTER_ERRORS = (AssertionError, ValueError, KeyError, TypeError, RecursionError)
#: Keywords whose value maps names to schemas, and keywords whose value is a list of schemas.
SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")


@dataclass(frozen=True)
class JsonGrammar:
    """A GBNF grammar for a JSON reply.

    Attributes:
        text: The GBNF text (start rule ``root``).
        kind: ``schema`` (made from the schema) or ``json`` (any JSON value: the schema could not be converted).
        reason: Why the schema could not be converted (``kind == "json"``), else empty.
    """

    text: str
    kind: GrammarKind
    reason: str = ""


def schema_grammar(schema: dict[str, Any]) -> JsonGrammar | None:
    """The GBNF grammar of replies that follow ``schema``; ``None`` when llama-cpp-python is not installed.

    A schema the converter cannot express falls back to a grammar of any JSON (see the module docstring).
    """
    try:
        from llama_cpp import llama_grammar
    except ImportError:  # the optional llama.cpp extra is missing: the caller generates free text
        return None
    try:
        return JsonGrammar(llama_grammar.json_schema_to_gbnf(json.dumps(bounded_arrays(schema))), "schema")
    except CONVERTER_ERRORS as exc:
        reason = f"{type(exc).__name__}: {exc}"
        logger.info("the output schema has features the grammar converter lacks (%s); constraining to JSON", reason)
        return json_fallback(schema, reason)


def json_fallback(schema: dict[str, Any], reason: str) -> JsonGrammar:
    """The any-JSON grammar for ``schema`` (an object at the root when it asks for one).

    For when the schema's own grammar cannot be made or is refused (``reason``). Needs llama-cpp-python.
    """
    return JsonGrammar(any_json_grammar(object_root=_wants_object(schema)), "json", reason)


def any_json_grammar(*, object_root: bool = True) -> str:
    """llama.cpp's grammar of JSON: an object at the root, or any JSON value (``object_root=False``)."""
    from llama_cpp import llama_grammar

    text = llama_grammar.JSON_GBNF
    if object_root:
        return text
    lines = text.splitlines()
    return "\n".join("root ::= value" if line.replace(" ", "") == "root::=object" else line for line in lines)


def bounded_arrays(schema: Any, max_items: int = MAX_ITEMS) -> Any:
    """A copy of ``schema`` where each array schema without ``maxItems`` gets one.

    The bound is ``max_items``, or the array's ``minItems`` when that is larger.
    """
    if not isinstance(schema, dict):
        return schema
    copy: dict[str, Any] = {}
    for key, value in schema.items():
        if key in SCHEMA_MAPS and isinstance(value, dict):  # name -> schema: the names are not keywords
            copy[key] = {name: bounded_arrays(sub, max_items) for name, sub in value.items()}
        elif isinstance(value, list) and key in SCHEMA_LISTS:
            copy[key] = [bounded_arrays(sub, max_items) for sub in value]
        elif isinstance(value, dict) and key not in ("const", "default", "enum", "examples"):
            copy[key] = bounded_arrays(value, max_items)
        else:
            copy[key] = value
    if (copy.get("type") == "array" or "items" in copy or "prefixItems" in copy) and "maxItems" not in copy:
        least = copy.get("minItems")
        copy["maxItems"] = max(max_items, least) if isinstance(least, int) else max_items
    return copy


def _wants_object(schema: dict[str, Any]) -> bool:
    """Whether ``schema`` asks for an object at the top (``type: object`` or object keywords)."""
    return schema.get("type") == "object" or "properties" in schema or "required" in schema


#: A GBNF token: a string literal, a character class, a repetition count, or a name (rule names start with a letter).
_GBNF_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[^}]*\}|[A-Za-z][A-Za-z0-9-]*')


#: The converter's string character (any but a quote or a backslash) and, inside a one-line tool input, the same
#: without control characters (no newline); its unbounded strings get at most MAX_STRING_CHARS characters.
_ANY_CHAR, _LINE_CHAR = '[^"\\\\]', '[^"\\\\\\x00-\\x1F\\x7F]'
_STAR_CHARS = re.compile(r"(?<![A-Za-z0-9-])char\*")
MAX_STRING_CHARS = 200


def embedded_schema_rules(schema: dict[str, Any], prefix: str) -> tuple[str, str] | None:
    """GBNF rules for ``schema`` that can sit inside another grammar: ``(start rule name, rules text)``.

    Every rule llama.cpp's converter makes (``root``, ``space``, ``string``, ...) is renamed ``<prefix>-<name>``,
    so the rules of several schemas, and the host grammar's own, cannot clash. The JSON stays on one line (the
    converter's whitespace rule is at most one space, strings have no control characters and at most
    :data:`MAX_STRING_CHARS` characters unless the schema says otherwise). ``None`` when llama-cpp-python is not
    installed or the converter cannot express the schema (the caller then constrains less, e.g. to any JSON object).
    """
    try:
        from llama_cpp import llama_grammar
    except ImportError:
        return None
    try:
        grammar = llama_grammar.json_schema_to_gbnf(json.dumps(bounded_arrays(schema)))
    except CONVERTER_ERRORS as exc:
        logger.info("a tool's argument schema has features the grammar converter lacks (%s)", exc)
        return None
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())

    def rename(body: str) -> str:
        body = _STAR_CHARS.sub(f"char{{0,{MAX_STRING_CHARS}}}", body.replace(_ANY_CHAR, _LINE_CHAR))
        return _GBNF_TOKEN.sub(lambda m: f"{prefix}-{m[0]}" if m[0] in rules else m[0], body)

    text = "\n".join(f"{prefix}-{name} ::= {rename(body)}" for name, body in rules.items())
    return f"{prefix}-root", text
