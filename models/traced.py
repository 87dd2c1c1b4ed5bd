"""``TracedModel``: a backend wrapper that records each model call as an LLM span (``chat {model}``).

Applied by :func:`traced` where runs load (:func:`~ponder.models.spec.load_model`) or receive
(:func:`~ponder.agents.runner.run_agent`) their model, only while tracing is on; otherwise the backend is returned
unchanged. ``spec``, ``backend_name``, ``real``, ``capabilities`` and ``load_info`` are the wrapped backend's, read
through on every access. A traced call made inside another traced call (a traced backend under a micro-batcher under
a traced wrapper) records no second span.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Generator, Iterator, Sequence

from openinference.semconv.trace import SpanAttributes as SA
from opentelemetry.trace import Span

from ponder.core.spans import KIND, LLM, OPERATION, set_attributes, set_error, set_output, set_usage
from ponder.core.tracing import AttributeValue, clip, span, start_span, tracing_enabled
from ponder.models.base import (
    Completion,
    GenerationParams,
    Message,
    ModelBackend,
    OptionLogprobs,
)
from ponder.models.wrapper import BackendWrapper

#: The most input messages recorded per call (the system prompt and the latest turns).
MAX_MESSAGES = 12
#: The most characters of one recorded message.
MAX_MESSAGE_CHARS = 2000

_inside = contextvars.ContextVar("ponder_traced_model_call", default=False)


@contextlib.contextmanager
def _outermost() -> Iterator[bool]:
    """Whether the traced call being made is the outermost one (only that one records a span), for its duration."""
    if _inside.get():
        yield False
        return
    token = _inside.set(True)
    try:
        yield True
    finally:
        _inside.reset(token)


def traced(model: ModelBackend) -> ModelBackend:
    """``model`` recording LLM spans while tracing is on (itself when tracing is off or it is already traced)."""
    if not tracing_enabled() or isinstance(model, TracedModel):
        return model
    return TracedModel(model)


class TracedModel(BackendWrapper):
    """A :class:`~ponder.models.base.ModelBackend` that delegates every call and records it as a span.

    Args:
        backend: The model that really runs.
    """

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """The backend's completions, recorded as one LLM span."""
        with _outermost() as outer:
            if not outer:
                return self.backend.generate(messages, params)
            with span(f"chat {self.spec}", self._request(params)) as current:
                _record_input(current, [messages])
                completions = self.backend.generate(messages, params)
                _record_output(current, completions)
                return completions

    def generate_batch(self, conversations: list[list[Message]], params: GenerationParams) -> list[list[Completion]]:
        """The backend's completions for a batch, recorded as one LLM span (``ponder.batch_size``)."""
        with _outermost() as outer:
            if not outer:
                return self.backend.generate_batch(conversations, params)
            with span(f"chat {self.spec}", {**self._request(params), "ponder.batch_size": len(conversations)}) \
                    as current:
                _record_input(current, conversations)
                results = self.backend.generate_batch(conversations, params)
                _record_output(current, [c for completions in results for c in completions],
                               sum(completions[0].prompt_tokens for completions in results if completions))
                return results

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """The backend's stream; the span (not made current) lasts until the stream ends or is closed."""
        if _inside.get():
            return (yield from self.backend.stream(messages, params))
        current = start_span(f"chat {self.spec}", {**self._request(params), "ponder.stream": True})
        _record_input(current, [messages])
        try:
            completion = yield from self.backend.stream(messages, params)
            _record_output(current, [completion])
            return completion
        except GeneratorExit:  # the caller stopped reading: not a failure
            raise
        except BaseException as exc:
            set_error(current, type(exc).__qualname__)
            raise
        finally:
            current.end()

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """The backend's option scores, recorded as an LLM span (``ponder.operation`` ``option_logprobs``)."""
        with _outermost() as outer:
            if not outer:
                return self.backend.option_logprobs(messages, options)
            with span(f"chat {self.spec}", {**self._request(None), "ponder.operation": "option_logprobs"}) \
                    as current:
                _record_input(current, [messages])
                scores = self.backend.option_logprobs(messages, options)
                set_usage(current, scores.prompt_tokens, 0)
                set_output(current, json.dumps(dict(zip(options, scores.logprobs, strict=True))))
                return scores

    def close(self) -> None:
        """Close the wrapped backend."""
        self.backend.close()

    def _request(self, params: GenerationParams | None) -> dict[str, AttributeValue | None]:
        attrs: dict[str, AttributeValue | None] = {
            OPERATION: "chat", "gen_ai.provider.name": self.backend_name, "gen_ai.request.model": self.spec,
            KIND: LLM, SA.LLM_MODEL_NAME: self.spec, SA.LLM_PROVIDER: self.backend_name,
        }
        if params is not None:
            attrs.update({
                "gen_ai.request.temperature": params.temperature, "gen_ai.request.top_p": params.top_p,
                "gen_ai.request.max_tokens": params.max_tokens, "gen_ai.request.seed": params.seed,
                "gen_ai.request.choice.count": params.n if params.n > 1 else None,
                SA.LLM_INVOCATION_PARAMETERS: params.model_dump_json(exclude_none=True, exclude={"tools", "grammar"}),
            })
        return attrs


def _record_input(current: Span, conversations: list[list[Message]]) -> None:
    """The (first) conversation as ``input.value`` and ``llm.input_messages`` (the system prompt, the latest turns)."""
    if not current.is_recording() or not conversations:
        return
    messages = conversations[0]
    kept = messages if len(messages) <= MAX_MESSAGES else [messages[0], *messages[-(MAX_MESSAGES - 1):]]
    attrs: dict[str, AttributeValue | None] = {SA.INPUT_VALUE: clip(messages[-1]["content"]) if messages else ""}
    for i, message in enumerate(kept):
        prefix = f"{SA.LLM_INPUT_MESSAGES}.{i}."
        attrs[prefix + "message.role"] = message["role"]
        attrs[prefix + "message.content"] = clip(message["content"], MAX_MESSAGE_CHARS)
    set_attributes(current, attrs)


def _record_output(current: Span, completions: list[Completion], prompt_tokens: int | None = None) -> None:
    """Tokens, finish reasons and the first completion (text and native tool calls) of a call.

    ``prompt_tokens`` defaults to the first completion's (the ``n`` completions of one prompt share it).
    """
    if not current.is_recording():
        return
    prompt = prompt_tokens if prompt_tokens is not None else (completions[0].prompt_tokens if completions else 0)
    set_usage(current, prompt, sum(c.completion_tokens for c in completions))
    attrs: dict[str, AttributeValue | None] = {
        "gen_ai.response.finish_reasons": [c.finish_reason for c in completions]}
    if completions:
        first = completions[0]
        out = f"{SA.LLM_OUTPUT_MESSAGES}.0."
        attrs.update({SA.OUTPUT_VALUE: clip(first.text), out + "message.role": "assistant",
                      out + "message.content": clip(first.text, MAX_MESSAGE_CHARS)})
        for i, call in enumerate(first.tool_calls):
            call_prefix = f"{out}message.tool_calls.{i}.tool_call."
            attrs.update({call_prefix + "id": call.id, call_prefix + "function.name": call.name,
                          call_prefix + "function.arguments": clip(call.arguments, MAX_MESSAGE_CHARS)})
    set_attributes(current, attrs)
    if any(c.finish_reason == "error" for c in completions):
        set_error(current, "completion_error")
