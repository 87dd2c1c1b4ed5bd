"""The pydantic argument model of an MCP tool, built from the server's ``inputSchema``.

The model has one field per top-level property (so the ReAct prompt lists the inputs and a one-input tool
takes plain text), checks the simple JSON types, and leaves everything else to the server, which validates
its own schema. Its ``model_json_schema()`` is the server's ``inputSchema``, unchanged, so native tool
calling sends the server's schema as it is.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model


def _number(value: Any) -> int | float:
    """A JSON number: an int stays an int, a float a float (text is read as either)."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            try:
                value = float(value.strip())
            except ValueError:
                pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Input should be a number")
    return value


#: JSON types checked (and, for plain-text input, coerced) on our side; the rest is the server's to check.
_SIMPLE_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": Annotated[Any, AfterValidator(_number)],
                                 "boolean": bool}


class MCPArguments(BaseModel):
    """Base of the argument models of MCP tools."""

    def arguments(self) -> dict[str, Any]:
        """The arguments to send: what the caller gave, under the server's names (unset optional ones left out)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


def args_model(tool_name: str, input_schema: dict[str, Any]) -> type[BaseModel]:
    """The argument model of ``tool_name`` for ``input_schema`` (a JSON Schema object).

    Required properties are required fields; others default to "not sent". A property whose name pydantic
    cannot use as a field (``model_*``, a leading underscore, a BaseModel attribute) gets an alias. Unknown
    keys are refused when the schema lists properties, and passed on when it lists none (unless it sets
    ``additionalProperties: false``).
    """
    schema = copy.deepcopy(input_schema)
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = set(schema.get("required") or []) if isinstance(schema.get("required"), list) else set()
    fields: dict[str, Any] = {}
    for i, (prop, spec) in enumerate(props.items()):
        annotation = _annotation(spec)
        default = ... if prop in required else None
        if _needs_alias(prop):
            fields[f"arg{i}_{prop.strip('_') or 'x'}"] = (annotation, Field(default, alias=prop))
        else:
            fields[prop] = (annotation, default)
    closed = bool(props) or schema.get("additionalProperties") is False
    config = ConfigDict(extra="forbid" if closed else "allow", json_schema_extra=_replace_with(schema),
                        protected_namespaces=(), validate_by_name=False, validate_by_alias=True)
    model = create_model(f"{tool_name}_args", __base__=MCPArguments, __config__=None, **fields)
    model.model_config.update(config)
    model.model_rebuild(force=True)
    return model


def _annotation(spec: Any) -> Any:
    kind = spec.get("type") if isinstance(spec, dict) else None
    return _SIMPLE_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def _needs_alias(prop: str) -> bool:
    return prop.startswith(("_", "model_")) or prop in dir(MCPArguments)


def _replace_with(schema: dict[str, Any]) -> Any:
    def replace(generated: dict[str, Any], cls: Any = None) -> None:
        generated.clear()
        generated.update(copy.deepcopy(schema))

    return replace
