"""Tool definitions for native function calling: a tool's arguments as JSON Schema, with types and descriptions.

:func:`tool_parameters` turns a tool's pydantic ``args_schema`` into the JSON Schema a model server expects in a
function definition: the types, ``required``, enums and each argument's description (a :class:`FunctionTool`
takes them from its docstring's ``Args:`` section; ponder's own tools declare them on their fields), without
pydantic's titles. An MCP tool's ``args_schema.model_json_schema()`` is the MCP server's own input schema, so
it goes through the same way. :func:`tool_definition` wraps it as an OpenAI ``function`` tool.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.tools.base import Tool

#: Keys whose value maps names to schemas (the names are not schema keywords: a property may be called title).
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
#: Keys whose value is data, not a schema (copied as it is).
_DATA_KEYS = ("default", "const", "enum", "examples")


def tool_parameters(t: Tool) -> dict[str, Any]:
    """The JSON Schema of ``t``'s arguments: an object schema with types, descriptions, ``required`` and enums.

    Pydantic's ``title`` entries are left out; an empty argument list gives ``{"type": "object",
    "properties": {}}``.
    """
    schema = _untitled(t.args_schema.model_json_schema())
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    return schema


def tool_definition(t: Tool) -> dict[str, Any]:
    """``t`` as an OpenAI function tool: ``{"type": "function", "function": {name, description, parameters}}``."""
    return {"type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": tool_parameters(t)}}


def tool_definitions(tools: list[Tool]) -> list[dict[str, Any]]:
    """:func:`tool_definition` of each tool, in order."""
    return [tool_definition(t) for t in tools]


def _untitled(node: Any) -> Any:
    """A copy of a JSON Schema without ``title`` keywords (names inside ``properties`` & co. are kept)."""
    if isinstance(node, list):
        return [_untitled(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _untitled(sub) for name, sub in value.items()}
        else:
            out[key] = _untitled(value)
    return out


def describe_input(t: Tool) -> str:
    """What the text protocol's prompt says a tool takes (``(input: ...)``).

    A one-argument tool: the argument's name (its input is plain text). Several arguments: the JSON object with
    each key's type, ``?`` after optional keys, then each key's description, e.g. ``a JSON object {"a": number,
    "b": number}; a: first number; b: second number``.
    """
    fields = t.args_schema.model_fields
    if len(fields) == 1:
        return next(iter(fields))
    schema = tool_parameters(t)
    props: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    keys = ", ".join(f'"{name}"{"" if name in required else "?"}: {_type_name(spec)}' for name, spec in props.items())
    notes = "; ".join(f"{name}: {' '.join(str(spec['description']).split())}" for name, spec in props.items()
                      if isinstance(spec, dict) and spec.get("description"))
    return f"a JSON object {{{keys}}}" + (f"; {notes}" if notes else "")


def _type_name(spec: Any) -> str:
    """A short type of a property schema: ``number``, ``string``, ``array of string``, ``"a" | "b"``, ``any``."""
    if not isinstance(spec, dict):
        return "any"
    if isinstance(spec.get("enum"), list):
        return " | ".join(json.dumps(v) for v in spec["enum"][:8])
    kind = spec.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array":
        return f"array of {_type_name(spec.get('items'))}"
    if kind is None and isinstance(spec.get("anyOf"), list):
        return " | ".join(_type_name(s) for s in spec["anyOf"])
    return str(kind) if kind else "any"
