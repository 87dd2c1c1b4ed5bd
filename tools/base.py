"""The tool protocol.

A tool has a name, a description, a pydantic argument schema and a ``run`` method returning an
observation string. The model's mistakes (bad arguments, a division by zero in its expression) raise
:class:`ToolInputError`, which becomes an observation; anything else is our bug and propagates.
"""

from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field, ValidationError, create_model

from ponder.core.errors import ConfigError
from ponder.core.spans import tool_span, traced_tool_result
from ponder.tools.schema import describe_input


class ToolInputError(Exception):
    """The model called a tool wrongly; the message is shown to the model as the observation."""


@runtime_checkable
class Tool(Protocol):
    """What the agent needs from a tool."""

    name: str
    description: str
    args_schema: type[BaseModel]

    def run(self, args: BaseModel) -> str:
        """Run with validated arguments and return the observation text."""
        ...


@runtime_checkable
class Closeable(Protocol):
    """A tool that holds per-run resources (a sandbox session) and releases them in :meth:`close`."""

    def close(self) -> None:
        """Release what the tool holds; calling it twice is fine."""
        ...


class FunctionTool:
    """A tool made from a plain typed function; its signature becomes the argument schema.

    Args:
        fn: The function. Its docstring's first paragraph is the description.
        name: Tool name (default: the function's name).
        description: Overrides the docstring.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, description: str | None = None):
        self.fn = fn
        self.name = name or fn.__name__
        doc = inspect.getdoc(fn) or ""
        self.description = description or doc.split("\n\n")[0].replace("\n", " ").strip() or self.name
        self.args_schema = _args_schema(fn, self.name)

    def run(self, args: BaseModel) -> str:
        """Call the function with the validated arguments."""
        result = self.fn(**args.model_dump())
        return result if isinstance(result, str) else json.dumps(result, default=str)


@functools.cache
def _args_schema(fn: Callable[..., Any], name: str) -> type[BaseModel]:
    """The pydantic model of a function's arguments (cached: building one costs ~0.5 ms).

    Each argument's description comes from the Google-style docstring's ``Args:`` section, when it has one.
    """
    import docstring_parser

    described = {p.arg_name: " ".join(p.description.split()) for p in
                 docstring_parser.parse(inspect.getdoc(fn) or "").params if p.description}
    try:
        signature = inspect.signature(fn, eval_str=True)  # annotations as types under ``from __future__ import``
    except NameError:
        signature = inspect.signature(fn)
    fields: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        annotation = param.annotation if param.annotation is not inspect.Parameter.empty else str
        default = param.default if param.default is not inspect.Parameter.empty else ...
        fields[pname] = (annotation, Field(default, description=described.get(pname)))
    return create_model(f"{name}_args", **fields)  # type: ignore[call-overload]


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Decorator turning a plain function into a :class:`FunctionTool`."""
    if fn is None:
        return lambda f: FunctionTool(f, name=name)
    return FunctionTool(fn, name=name)


def parse_tool_input(t: Tool, raw: str) -> BaseModel:
    """Turn the model's ``Action Input`` text into validated arguments.

    A JSON object maps to the fields; any other text goes to the single required field of a
    one-argument tool (so ``Action Input: 2 + 3`` works for the calculator).

    Raises:
        ToolInputError: when the text does not fit the schema.
    """
    fields = t.args_schema.model_fields
    text = raw.strip()
    data: Any = None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # also too deeply nested, or an integer too long to read
            if len(fields) != 1:
                why = exc.msg if isinstance(exc, json.JSONDecodeError) else "too deeply nested or too large"
                raise ToolInputError(f"Action Input is not valid JSON ({why}).") from None
    if not isinstance(data, dict):
        if len(fields) != 1:
            names = ", ".join(fields)
            raise ToolInputError(f"{t.name} expects a JSON object with keys: {names}.")
        (only,) = fields
        if len(text) > 1 and text.startswith('"') and text.endswith('"'):
            try:
                text = json.loads(text)
            except (ValueError, RecursionError):
                pass
        data = {only: text}
    return validate_arguments(t, data)


def validate_arguments(t: Tool, data: Any, whole: str = "input") -> BaseModel:
    """``data`` validated by ``t``'s argument schema.

    Raises:
        ToolInputError: when it does not fit: one ``field: problem`` per error (``whole`` names a problem of the
            arguments as a whole), as the caller (the model, an MCP client) sees it.
    """
    try:
        return t.args_schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or whole}: {e['msg']}" for e in exc.errors())
        raise ToolInputError(f"invalid arguments for {t.name}: {problems}") from None


@dataclass
class ToolResult:
    """The outcome of one tool call."""

    observation: str
    ok: bool
    seconds: float


class ToolBox:
    """The tools available to one agent run, by name."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self.tools: dict[str, Tool] = {}
        for t in tools:
            tt = t if isinstance(t, Tool) else FunctionTool(t)
            if tt.name in self.tools:
                raise ConfigError(f"two tools are named {tt.name!r}")
            self.tools[tt.name] = tt

    def names(self) -> list[str]:
        """Tool names in registration order."""
        return list(self.tools)

    def describe(self) -> str:
        """One line per tool for the prompt: ``name: description (input: ...)``.

        A one-argument tool names its argument; a tool with several gives its JSON object's keys with their types
        and descriptions (:func:`~ponder.tools.schema.describe_input`).
        """
        return "\n".join(f"{t.name}: {t.description} (input: {describe_input(t)})" for t in self.tools.values())

    def call(self, name: str, raw_input: str, *, call_id: str | None = None) -> ToolResult:
        """Run tool ``name`` on the model's raw input; the model's mistakes become ``ok=False`` observations.

        Traced as an ``execute_tool {name}`` span (``call_id``: the native tool call's id, when there is one).
        """
        with tool_span(name, raw_input, call_id) as current:
            result = self._call(name, raw_input)
            traced_tool_result(current, result.observation, result.ok)
            return result

    def _call(self, name: str, raw_input: str) -> ToolResult:
        start = time.perf_counter()
        t = self.tools.get(name)
        if t is None:
            known = ", ".join(self.tools) or "none"
            return ToolResult(f"Error: unknown tool {name!r}. Available tools: {known}.", False, 0.0)
        try:
            obs = t.run(parse_tool_input(t, raw_input))
            ok = True
        except ToolInputError as exc:
            obs, ok = f"Error: {exc}", False
        return ToolResult(obs, ok, time.perf_counter() - start)
