"""Structured output: the final answer of a run as a JSON value that follows an output schema.

After an agent answers, :func:`structure_answer` asks the model once more for the answer as JSON, held to the
schema as tightly as the backend allows, in order of preference:

1. ``json_schema``: the backend enforces the schema itself (``capabilities.json_schema``: a server's
   ``response_format``), sent as ``GenerationParams.json_schema``;
2. ``grammar``: a GBNF grammar made from the schema (``capabilities.grammar``: llama.cpp in process, or a server
   that takes grammars); ``json_grammar`` when the schema has features the converter lacks (any JSON then);
3. ``text``: free text, from which the JSON is extracted (code fences and prose are passed over).

The reply is then validated (pydantic for a model, ``jsonschema`` otherwise); an invalid reply gets ONE repair turn
that shows the validation errors. A reply still invalid gives ``valid=False`` with the errors: the model's fault
never raises, and the run keeps its text answer.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from ponder.agents.json_extract import extract_json
from ponder.agents.output_schema import OutputSchema, cached_output_schema, load_output_schema
from ponder.core.errors import ModelError
from ponder.core.prompts import render
from ponder.core.records import Trajectory, Usage
from ponder.models.base import Completion, GenerationParams, Message, ModelBackend
from ponder.models.json_grammar import json_fallback, schema_grammar

__all__ = ["OutputSchema", "StructuredResult", "apply_output_schema", "cached_output_schema", "load_output_schema",
           "output_record", "structure_answer"]

logger = logging.getLogger("ponder.agents")

#: How the reply was held to the schema.
Method = Literal["json_schema", "grammar", "json_grammar", "text"]
#: The fewest new tokens a structuring call may use (a run's per-step limit can be smaller than an object).
MIN_TOKENS = 512


class StructuredResult(BaseModel):
    """What :func:`structure_answer` got.

    Attributes:
        value: The validated JSON value (a pydantic model's JSON dump), ``None`` when no valid one came back.
        valid: Whether ``value`` follows the schema.
        method: How the reply was held to the schema (see the module docstring).
        attempts: Model calls made (1, or 2 with the repair turn).
        errors: The last reply's validation errors (empty when valid).
        usage: Tokens and calls the structuring spent.
    """

    value: Any = None
    valid: bool = False
    method: Method = "text"
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


def structure_answer(model: ModelBackend, params: GenerationParams, task: str, answer: str, schema: OutputSchema, *,
                     repair: bool = True) -> StructuredResult:
    """Ask ``model`` for ``answer`` (to ``task``) as JSON following ``schema``; validate, repair once.

    Args:
        model: The backend (its capabilities choose the method).
        params: The run's sampling parameters: greedy decoding, one completion, at least :data:`MIN_TOKENS`
            tokens and no stop sequences or tools are used for these calls.
        task: The task the answer answers.
        answer: The run's final answer (text).
        schema: The output schema.
        repair: Allow the one repair turn.

    Raises:
        ModelError: only when the backend itself fails (the model's reply never raises).
    """
    started = time.perf_counter()
    method, call_params = _call_params(model, params, schema)
    messages: list[Message] = [
        {"role": "user", "content": render("structured_output", task=task, answer=answer,
                                           schema=json.dumps(schema.schema, indent=1))}]
    result = StructuredResult(method=method)
    value, errors = None, ["no reply"]
    for turn in range(2 if repair else 1):
        if turn:
            messages += [{"role": "user", "content": render("structured_repair", errors="\n".join(
                f"- {e}" for e in errors))}]
        completion, call_params = _generate(model, messages, call_params, result, schema)
        _count(result, completion)
        value, errors = _check(completion, schema)
        if not errors:
            break
        messages = [*messages, {"role": "assistant", "content": completion.text}]
    result.value, result.valid, result.errors = value, not errors, errors
    result.usage.wall_seconds = round(time.perf_counter() - started, 4)
    return result


def apply_output_schema(traj: Trajectory, model: ModelBackend, params: GenerationParams,
                        schema: OutputSchema) -> None:
    """Structure ``traj``'s final answer: ``traj.output``, ``metadata["output"]`` and the usage are updated.

    See :func:`output_record` (no answer: no call; a backend failure is recorded, the run stands).
    """
    traj.output, traj.metadata["output"], usage = output_record(model, params, traj.task, traj.final_answer, schema)
    traj.usage = traj.usage + usage


def output_record(model: ModelBackend, params: GenerationParams, task: str, answer: str | None,
                  schema: OutputSchema) -> tuple[Any, dict[str, object], Usage]:
    """The structured ``answer`` as a record gets it: ``(value or None, check, usage)``.

    ``check`` is ``{"valid", "method", "attempts", "errors", "schema"}``. Without an answer nothing is called; a
    backend failure during the structuring is an error of the check (the caller's text answer stands).
    """
    check: dict[str, object] = {"valid": False, "method": None, "attempts": 0, "errors": [], "schema": schema.name}
    if answer is None:
        check["errors"] = ["the run ended without a final answer"]
        return None, check, Usage()
    try:
        result = structure_answer(model, params, task, answer, schema)
    except ModelError as exc:
        logger.warning("structuring the answer failed: %s", exc)
        check["errors"] = [f"the model call failed: {exc}"]
        return None, check, Usage()
    check.update(valid=result.valid, method=result.method, attempts=result.attempts, errors=result.errors)
    return (result.value if result.valid else None), check, result.usage


def _call_params(model: ModelBackend, params: GenerationParams,
                 schema: OutputSchema) -> tuple[Method, GenerationParams]:
    """The method the backend allows and the parameters of the structuring calls."""
    base = params.model_copy(update={"temperature": 0.0, "n": 1, "stop": [], "logprobs": False, "tools": None,
                                     "tool_choice": None, "grammar": None, "json_schema": None,
                                     "max_tokens": max(params.max_tokens, MIN_TOKENS)})
    caps = model.capabilities
    if caps.json_schema:
        return "json_schema", base.model_copy(update={"json_schema": schema.schema})
    if caps.grammar:
        grammar = schema_grammar(schema.schema)
        if grammar is not None:
            method: Method = "grammar" if grammar.kind == "schema" else "json_grammar"
            return method, base.model_copy(update={"grammar": grammar.text})
    return "text", base


def _generate(model: ModelBackend, messages: list[Message], params: GenerationParams, result: StructuredResult,
              schema: OutputSchema) -> tuple[Completion, GenerationParams]:
    """One structuring call, and the params the later calls use.

    A schema grammar the backend refuses (llama.cpp's parser rejects some converter output, e.g. very long bounded
    strings) is replaced by the any-JSON grammar for this call and the next.
    """
    try:
        return model.generate(messages, params)[0], params
    except ModelError as exc:
        if result.method != "grammar":
            raise
        logger.warning("the backend refused the grammar made from the output schema (%s); constraining to JSON", exc)
        result.method = "json_grammar"
        params = params.model_copy(update={"grammar": json_fallback(schema.schema, str(exc)).text})
        return model.generate(messages, params)[0], params


def _check(completion: Completion, schema: OutputSchema) -> tuple[Any, list[str]]:
    """The reply's validated value and its errors (no errors: valid)."""
    try:
        value = extract_json(completion.text)
    except ValueError as exc:
        cut = " (the reply was cut off at the token limit)" if completion.finish_reason == "length" else ""
        return None, [f"{exc}{cut}"]
    return schema.validate(value)


def _count(result: StructuredResult, completion: Completion) -> None:
    result.attempts += 1
    result.usage.model_calls += 1
    result.usage.prompt_tokens += completion.prompt_tokens
    result.usage.completion_tokens += completion.completion_tokens
