"""GBNF grammars for JSON output: a JSON Schema turned into a grammar by llama.cpp's own converter.

Backends that honour grammars (``capabilities.grammar``: the in-process llama.cpp backend, servers that take a
grammar) can be held to a JSON Schema by the grammar :func:`schema_grammar` makes with
``llama_cpp.llama_grammar.json_schema_to_gbnf`` (the converter llama.cpp's server uses for ``response_format``).
The converter does not know every schema feature (``not``, lookaround patterns, remote ``$ref`` ...): for those,
:func:`schema_grammar` falls back to a grammar of any JSON value (an object when the schema asks for one), so the
reply is still JSON and the caller's validation catches what the grammar could not enforce.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger("ponder.models")

#: How the grammar holds the reply: to the schema itself, or (a schema feature the converter lacks) to any JSON.
GrammarKind = Literal["schema", "json"]


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
        return JsonGrammar(llama_grammar.json_schema_to_gbnf(json.dumps(schema)), "schema")
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        logger.info("the output schema has features the grammar converter lacks (%s); constraining to JSON", reason)
        return JsonGrammar(any_json_grammar(object_root=_wants_object(schema)), "json", reason)


def any_json_grammar(*, object_root: bool = True) -> str:
    """llama.cpp's grammar of JSON: an object at the root, or any JSON value (``object_root=False``)."""
    from llama_cpp import llama_grammar

    text = llama_grammar.JSON_GBNF
    if object_root:
        return text
    lines = text.splitlines()
    return "\n".join("root ::= value" if line.replace(" ", "") == "root::=object" else line for line in lines)


def _wants_object(schema: dict[str, Any]) -> bool:
    """Whether ``schema`` asks for an object at the top (``type: object`` or object keywords)."""
    return schema.get("type") == "object" or "properties" in schema or "required" in schema
