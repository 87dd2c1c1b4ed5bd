"""A scripted model for tests and examples: no weights, fully deterministic.

Responses come from a list (consumed in order) or from a function of the conversation.
Stop sequences are honoured exactly as a real backend would, so agent code sees realistic text.
A response may also be a :class:`~ponder.models.base.Completion` (e.g. one with native ``tool_calls``), returned
as it is; with ``tool_calls=True`` the model claims ``capabilities.tool_calls`` so agents take the native path.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from pathlib import Path

from ponder.core.datafiles import read_jsonl_file
from ponder.core.errors import ConfigError, DataError, ModelError
from ponder.models.base import (
    BaseBackend,
    Completion,
    GenerationParams,
    Message,
    ModelCapabilities,
    OptionLogprobs,
    ToolCall,
    floored,
    truncate_at_stop,
)

#: A scripted reply: its text, or a whole completion (native tool calls).
Reply = str | Completion
ResponseFn = Callable[[list[Message], GenerationParams], Reply]
#: Scripted option scores: a function ``(messages, options) -> logprobs``.
OptionFn = Callable[[list[Message], Sequence[str]], list[float]]


class ScriptExhaustedError(DataError):
    """The scripted model was asked for more responses than it holds."""


class ScriptedModel(BaseBackend):
    """A model that replays scripted responses.

    Args:
        responses: A list of replies returned in order, or a function ``(messages, params) -> reply``; a reply is
            a text or a :class:`Completion` (returned as it is: native tool calls).
        repeat_last: When the list is exhausted, keep returning its last item instead of raising.
        spec: The spec string recorded in trajectories.
        stream_delay: Seconds to wait before each word :meth:`stream` yields (default 0); a JSONL item
            ``{"text": ..., "delay": 0.2}`` sets it for that reply only.
        delays: Per-reply stream delays (``None`` items use ``stream_delay``), as read from a JSONL script.
        context_window: The context size the model claims (``capabilities.context_window``), so tests can give
            an agent a tiny context; ``None`` (default): unbounded. :meth:`count_tokens` counts words.
        continuous: Claim ``capabilities.continuous_batching`` (concurrent calls need no batcher; a response
            function is called concurrently from the callers' threads), so tests can drive that path.
        option_logprobs: What :meth:`option_logprobs` answers: a list of log-probability lists consumed in order
            (one list per call, one value per option), a function ``(messages, options) -> logprobs``, ``None``
            (default: uniform, ``log(1 / len(options))`` each) or ``False`` (the capability is off and the call
            raises, as on a backend that cannot score options).
        tool_calls: Claim ``capabilities.tool_calls`` (native tool calling), so tests drive that path.
        json_schema: Claim ``capabilities.json_schema`` (the backend would enforce ``params.json_schema``).

    Attributes:
        calls: Every conversation the model was asked about, in order (for assertions in tests).
    """

    backend_name = "scripted"
    real = False

    def __init__(
        self,
        responses: Iterable[Reply] | ResponseFn,
        *,
        repeat_last: bool = False,
        spec: str = "scripted",
        stream_delay: float = 0.0,
        delays: list[float | None] | None = None,
        context_window: int | None = None,
        continuous: bool = False,
        option_logprobs: Iterable[Sequence[float]] | OptionFn | bool | None = None,
        tool_calls: bool = False,
        json_schema: bool = False,
    ) -> None:
        self.spec = spec
        self.capabilities = ModelCapabilities(streaming=True, context_window=context_window,
                                              continuous_batching=continuous,
                                              option_logprobs=option_logprobs is not False,
                                              tool_calls=tool_calls, json_schema=json_schema)
        self._option_fn: OptionFn | None = option_logprobs if callable(option_logprobs) else None
        scripted = option_logprobs is not None and not isinstance(option_logprobs, bool) and not callable(
            option_logprobs)
        self._option_items: list[list[float]] | None = (
            [list(x) for x in option_logprobs] if scripted else None)  # type: ignore[union-attr]
        #: Every ``(messages, options)`` :meth:`option_logprobs` was asked about, in order.
        self.option_calls: list[tuple[list[Message], list[str]]] = []
        self.stream_delay = stream_delay
        self._delays: list[float | None] = list(delays or [])
        self._last_delay: float | None = None
        self._fn: ResponseFn | None = responses if callable(responses) else None
        self._items: list[Reply] = [] if callable(responses) else list(responses)
        self._next = 0
        self._repeat_last = repeat_last
        self._lock = threading.Lock()
        self.calls: list[list[Message]] = []

    @classmethod
    def from_jsonl(cls, path: str | Path) -> ScriptedModel:
        """Load responses from a JSONL file: each line a JSON string or ``{"text": ..., "delay": seconds}``.

        A line may carry native tool calls: ``{"text": "", "tool_calls": [{"name": "calculator", "arguments":
        {"expression": "2+2"}, "id": "c1"}]}`` (``arguments`` an object, or a string sent as it is; ``id``
        optional). A script with tool calls claims ``capabilities.tool_calls``.

        A script is read strictly (:func:`~ponder.core.datafiles.read_jsonl_file`): a bad line would shift every
        later reply, so any bad line refuses the file, and an empty file is an error too.

        Raises:
            ConfigError: when the file does not exist.
            DataError: when the file is empty or blank.
            BadLinesError: listing every bad line as ``file:line: problem``.
        """
        read = read_jsonl_file(path, _script_item, what="scripted model", missing=ConfigError)
        items = [text for text, _ in read.values()]
        delays = [delay for _, delay in read.values()]
        native = any(isinstance(item, Completion) and item.tool_calls for item in items)
        return cls(items, spec=f"scripted:{Path(path)}", delays=delays, tool_calls=native)

    def _next_text(self, messages: list[Message], params: GenerationParams) -> Reply:
        with self._lock:
            self.calls.append([dict(m) for m in messages])  # type: ignore[misc]
        if self._fn is not None:  # outside the lock: parallel branches may call it concurrently
            return self._fn(messages, params)
        with self._lock:
            self._last_delay = None
            if self._next >= len(self._items):
                if self._repeat_last and self._items:
                    return self._items[-1]
                raise ScriptExhaustedError(
                    f"scripted model exhausted after {len(self._items)} responses"
                )
            text = self._items[self._next]
            if self._next < len(self._delays):
                self._last_delay = self._delays[self._next]
            self._next += 1
            return text

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` scripted completions, cut at the stop sequences and ``max_tokens`` words."""
        return [self._complete(self._next_text(messages, params), messages, params) for _ in range(params.n)]

    def count_tokens(self, messages: list[Message]) -> int:
        """Deterministic prompt size: the whitespace-separated words of every message plus 4 per message."""
        return sum(len(m["content"].split()) + 4 for m in messages)

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """The scripted scores of ``options`` (see the ``option_logprobs`` argument); prompt tokens as counted.

        Raises:
            ModelError: when the capability is off or two options are equal.
            ScriptExhaustedError: when the scripted lists are used up.
            DataError: when a scripted list does not have one value per option.
        """
        if not self.capabilities.option_logprobs:
            return super().option_logprobs(messages, options)
        if not options or len(set(options)) != len(options):
            raise ModelError(f"option_logprobs needs distinct options, got {list(options)}")
        with self._lock:
            self.option_calls.append(([dict(m) for m in messages], list(options)))  # type: ignore[misc]
            if self._option_items is not None:
                if not self._option_items:
                    raise ScriptExhaustedError("scripted model ran out of option log-probabilities")
                values = self._option_items.pop(0)
        if self._option_fn is not None:
            values = self._option_fn(messages, options)
        elif self._option_items is None:
            values = [math.log(1 / len(options))] * len(options)
        if len(values) != len(options):
            raise DataError(f"scripted option log-probabilities {values} do not match the options {list(options)}")
        return OptionLogprobs(logprobs=floored(values), prompt_tokens=self.count_tokens(messages))

    @staticmethod
    def _complete(raw: Reply, messages: list[Message], params: GenerationParams) -> Completion:
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        if isinstance(raw, Completion):
            return raw.model_copy(update={"prompt_tokens": raw.prompt_tokens or prompt_tokens})
        text, _ = truncate_at_stop(raw, params.stop)
        words = text.split(" ")
        finish = "stop"
        if len(words) > params.max_tokens:
            text, finish = " ".join(words[: params.max_tokens]), "length"
        return Completion(text=text, finish_reason=finish,  # type: ignore[arg-type]
                          prompt_tokens=prompt_tokens,
                          completion_tokens=len(text.split()))

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the next scripted reply word by word (waiting ``stream_delay`` before each); return its completion.

        The text is exactly what :meth:`generate` would return (cut at the stop sequences and ``max_tokens``).
        """
        raw = self._next_text(messages, params)
        delay = self._last_delay if self._last_delay is not None else self.stream_delay
        completion = self._complete(raw, messages, params)
        for piece in re.findall(r"\S+\s*|\s+", completion.text):
            if delay:
                time.sleep(delay)
            yield piece
        return completion


def _script_item(obj: object) -> tuple[Reply, float | None]:
    """One line of a script file as ``(reply, delay)``; ``ValueError`` says what is wrong."""
    text = obj.get("text", "" if isinstance(obj, dict) and "tool_calls" in obj else None) \
        if isinstance(obj, dict) else obj
    if not isinstance(text, str):
        raise ValueError("expected a string or an object with a 'text' string")
    delay = obj.get("delay") if isinstance(obj, dict) else None
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0):
        raise ValueError("'delay' must be a number of seconds >= 0")
    calls = obj.get("tool_calls") if isinstance(obj, dict) else None
    if calls is None:
        return text, delay
    return Completion(text=text, tool_calls=_script_calls(calls), completion_tokens=len(text.split()) + 1), delay


def _script_calls(calls: object) -> list[ToolCall]:
    """The ``tool_calls`` of a script line: ``[{"name", "arguments" (object or string), "id" (optional)}]``."""
    if not isinstance(calls, list) or not calls:
        raise ValueError("'tool_calls' must be a non-empty list of {name, arguments, id}")
    out = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
            raise ValueError("each tool call needs a 'name' string")
        args = call.get("arguments", {})
        if not isinstance(args, str | dict):
            raise ValueError("a tool call's 'arguments' must be an object or a string")
        out.append(ToolCall(id=str(call.get("id") or f"call_{i}"), name=call["name"],
                            arguments=args if isinstance(args, str) else json.dumps(args)))
    return out
