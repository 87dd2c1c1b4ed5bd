"""The spans of an agent run, named and attributed per the OTel GenAI conventions plus OpenInference's.

GenAI (``invoke_agent {agent}``, ``chat {model}``, ``execute_tool {tool}``; ``gen_ai.*`` attributes) is what
generic OTLP backends (Langfuse, LangSmith, Grafana) read; OpenInference (``openinference.span.kind``,
``input.value``/``output.value``, ``llm.*``, ``tool.name``) is what Arize Phoenix renders. Every helper returns the
shared no-op span while tracing is off (see :mod:`ponder.core.tracing`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry.trace import Span

from ponder.core.tracing import NOOP, AttributeValue, clip, span, tracing_enabled

KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
AGENT = OpenInferenceSpanKindValues.AGENT.value
LLM = OpenInferenceSpanKindValues.LLM.value
TOOL = OpenInferenceSpanKindValues.TOOL.value
CHAIN = OpenInferenceSpanKindValues.CHAIN.value

OPERATION = "gen_ai.operation.name"
AGENT_NAME = "gen_ai.agent.name"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
ERROR_TYPE = "error.type"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"


def agent_span(agent: str, task: str, model: str) -> AbstractContextManager[Span]:
    """The root span of one agent run (``invoke_agent {agent}``, OpenInference AGENT)."""
    if not tracing_enabled():
        return NOOP
    return span(f"invoke_agent {agent}", {
        OPERATION: "invoke_agent", AGENT_NAME: agent, "gen_ai.request.model": model,
        KIND: AGENT, SpanAttributes.AGENT_NAME: agent, SpanAttributes.INPUT_VALUE: clip(task),
    })


def step_span(index: int) -> AbstractContextManager[Span]:
    """One agent step (``step N``, CHAIN): the model call and the tool call it asked for."""
    if not tracing_enabled():
        return NOOP
    return span(f"step {index}", {KIND: CHAIN, "ponder.step.index": index})


def tool_span(name: str, raw_input: str, call_id: str | None = None) -> AbstractContextManager[Span]:
    """One tool call (``execute_tool {tool}``, OpenInference TOOL) with the model's raw input."""
    if not tracing_enabled():
        return NOOP
    return span(f"execute_tool {name}", {
        OPERATION: "execute_tool", TOOL_NAME: name, TOOL_CALL_ID: call_id,
        KIND: TOOL, SpanAttributes.TOOL_NAME: name, SpanAttributes.TOOL_ID: call_id,
        SpanAttributes.INPUT_VALUE: clip(raw_input),
    })


def traced_tool_result(current: Span, observation: str, ok: bool) -> None:
    """A tool call's observation (``output.value``, its size) and, for a failed call, ``error.type``."""
    if not current.is_recording():
        return
    set_output(current, observation)
    current.set_attribute("ponder.tool.output_chars", len(observation))
    if not ok:
        set_error(current, "tool_error")


def chain_span(name: str, attributes: dict[str, AttributeValue | None] | None = None,
               input_value: str | None = None) -> AbstractContextManager[Span]:
    """A strategy node (self-consistency, a vote, a search expansion, a refine round): an OpenInference CHAIN."""
    if not tracing_enabled():
        return NOOP
    return span(name, {KIND: CHAIN, SpanAttributes.INPUT_VALUE: clip(input_value) if input_value else None,
                       **(attributes or {})})


def set_output(current: Span, text: str | None) -> None:
    """Record ``text`` (clipped) as the span's ``output.value``."""
    if text is not None and current.is_recording():
        current.set_attribute(SpanAttributes.OUTPUT_VALUE, clip(text))


def set_error(current: Span, error_type: str) -> None:
    """Mark the span failed with ``error.type`` (for failures that are results, not exceptions)."""
    if current.is_recording():
        from opentelemetry.trace import Status, StatusCode

        current.set_attribute(ERROR_TYPE, error_type)
        current.set_status(Status(StatusCode.ERROR, error_type))


def set_attributes(current: Span, attributes: dict[str, AttributeValue | None]) -> None:
    """Set the attributes that are not ``None`` (nothing while the span does not record)."""
    if current.is_recording():
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


def set_usage(current: Span, prompt_tokens: int, completion_tokens: int) -> None:
    """Token usage in both conventions (``gen_ai.usage.*`` and ``llm.token_count.*``)."""
    set_attributes(current, {
        INPUT_TOKENS: prompt_tokens, OUTPUT_TOKENS: completion_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_PROMPT: prompt_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: completion_tokens,
        SpanAttributes.LLM_TOKEN_COUNT_TOTAL: prompt_tokens + completion_tokens,
    })
