"""The model protocol shared by every backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal, NotRequired, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ponder.core.errors import ModelError, RealModelCallError

FinishReason = Literal["stop", "length", "error"]

#: Environment flag set by the unit-test suite: any real backend call then raises.
FORBID_REAL_MODEL_ENV = "PONDER_FORBID_REAL_MODEL"
#: The log-probability given to an option the backend puts (practically) no mass on: finite, so it serializes.
LOGPROB_FLOOR = -1e4


class ToolCallFunction(TypedDict):
    """The function a tool call names and its arguments (a JSON object as text), as in the OpenAI chat format."""

    name: str
    arguments: str


class ToolCallMessage(TypedDict):
    """One tool call inside an assistant message (OpenAI chat format)."""

    id: str
    type: Literal["function"]
    function: ToolCallFunction


class Message(TypedDict):
    """One chat message, as in the OpenAI chat format.

    ``tool_calls`` (assistant) and ``tool_call_id`` (role ``tool``) appear only in native tool calling, which
    only backends with ``capabilities.tool_calls`` are sent.
    """

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: NotRequired[list[ToolCallMessage]]
    tool_call_id: NotRequired[str]


class ToolCall(BaseModel):
    """A tool call the model made through the native function-calling API.

    Attributes:
        id: The call id the server gave (echoed back in the ``tool`` message with the result).
        name: The tool's name.
        arguments: The arguments as the model wrote them: a JSON object as text (possibly malformed: the
            model's fault, so it becomes an observation).
    """

    id: str
    name: str
    arguments: str = "{}"


class GenerationParams(BaseModel):
    """Sampling parameters understood by every backend."""

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    n: int = Field(1, ge=1, le=128)
    logprobs: bool = False
    #: A GBNF grammar the completion must follow (``None``: free text). Backends whose
    #: ``capabilities.grammar`` is false ignore it; callers check the capability before relying on it.
    grammar: str | None = None
    #: Native tool calling: OpenAI-format tool definitions (``{"type": "function", "function": {name,
    #: description, parameters}}``) the model may call. Sent only to backends with ``capabilities.tool_calls``.
    tools: list[dict[str, Any]] | None = None
    #: Native tool calling: ``auto`` (the model may answer or call), ``required`` or ``none``.
    tool_choice: Literal["auto", "required", "none"] | None = None
    #: A JSON Schema the reply must follow (structured output), sent as ``response_format`` to backends with
    #: ``capabilities.json_schema``; others ignore it (callers validate and repair).
    json_schema: dict[str, Any] | None = None


class Completion(BaseModel):
    """One generated completion.

    Attributes:
        text: The generated text, cut before the first stop sequence (which is not included).
        finish_reason: ``stop`` (EOS or a stop sequence), ``length`` (hit ``max_tokens``) or ``error``.
        prompt_tokens: Tokens in the prompt that produced this completion.
        completion_tokens: Tokens generated for this completion.
        logprob: Sum of token log-probabilities when the backend returns them, else ``None``.
    """

    text: str
    finish_reason: FinishReason = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob: float | None = None
    #: Native tool calls in this reply (empty for text replies and backends without ``capabilities.tool_calls``).
    tool_calls: list[ToolCall] = Field(default_factory=list)


class OptionLogprobs(BaseModel):
    """How likely each option is as the first token of the reply (see :meth:`ModelBackend.option_logprobs`).

    Attributes:
        logprobs: One per option, in order: log P(first token of the option | the prompt rendered with the chat
            template + the start of the assistant turn), at least :data:`LOGPROB_FLOOR` (never ``-inf``).
        prompt_tokens: Tokens of the prompt that was scored (what the call cost; nothing is generated).
    """

    logprobs: list[float]
    prompt_tokens: int = Field(0, ge=0)


class ModelCapabilities(BaseModel):
    """What a backend can do, stated by the backend itself (callers read it instead of probing attributes).

    Attributes:
        batched_decoding: ``generate_batch`` really decodes several sequences together (one pass for a batch),
            so gathering concurrent calls into batches pays off.
        streaming: ``stream`` yields pieces as they are decoded (not the whole text at once).
        logprobs: Completions can carry log-probability sums (``GenerationParams.logprobs``).
        context_window: Tokens of prompt plus completion the backend holds; ``None``: unknown or unbounded.
        continuous_batching: Concurrent ``generate``/``stream`` calls from many threads are decoded together by
            the backend itself (a continuous-batching engine, or a server with N requests in flight): callers
            just call it from their threads, no batcher in between.
        grammar: ``GenerationParams.grammar`` is honoured (llama.cpp's grammar sampler, or a server's grammar /
            structured-output option).
        option_logprobs: :meth:`ModelBackend.option_logprobs` works (next-token scores of given options); where it
            is false the call raises :class:`~ponder.core.errors.ModelError`.
        tool_calls: Native tool calling works: ``GenerationParams.tools`` is sent and ``Completion.tool_calls``
            read (an OpenAI-compatible server with a tool-call parser: vLLM ``--enable-auto-tool-choice``,
            llama.cpp's server with a tool-capable chat format).
        json_schema: ``GenerationParams.json_schema`` is enforced by the backend (``response_format`` on a server,
            or a grammar made from the schema).

    Frozen: a backend's capabilities are set when it is made (e.g. ``ScriptedModel(..., context_window=64)``).
    """

    model_config = ConfigDict(frozen=True)

    batched_decoding: bool = False
    streaming: bool = False
    logprobs: bool = False
    context_window: int | None = Field(None, ge=1)
    continuous_batching: bool = False
    grammar: bool = False
    option_logprobs: bool = False
    tool_calls: bool = False
    json_schema: bool = False


@runtime_checkable
class ModelBackend(Protocol):
    """What an agent needs from a model.

    Implementations: ``llamacpp`` and ``transformers`` (in-process, behind the ``embedded`` spec), ``openai``
    (any OpenAI-compatible server), ``scripted`` (tests and examples); wrappers such as the micro-batcher and
    the chat's streaming model implement it too. Every member is always present: callers never probe.

    Attributes:
        spec: The spec string recorded in trajectories.
        backend_name: Which backend runs the model: ``llamacpp``, ``transformers``, ``openai``, ``scripted``, ...
        real: ``True`` for backends that run a real model (guarded in unit tests).
        capabilities: What the backend can do (batched decoding, streaming, logprobs, context window).
        load_info: How the model was loaded (path, threads, device, load seconds, ...); empty when nothing was.
    """

    spec: str
    backend_name: str
    real: bool
    capabilities: ModelCapabilities
    load_info: Mapping[str, Any]

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation."""
        ...

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions for each of many conversations, in order."""
        ...

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the text of one completion as it is generated; the generator returns the :class:`Completion`."""
        ...

    def count_tokens(self, messages: list[Message]) -> int:
        """Return the prompt tokens of these chat messages as they would be sent (chat template included)."""
        ...

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` as the next token of the reply, without generating (see :class:`OptionLogprobs`).

        The prompt is rendered as for :meth:`generate` (chat template + the start of the assistant turn) and the
        model's next-token distribution is read at its last position. The FIRST TOKEN of each option decides:
        options must begin with distinct tokens (``"yes"``/``"no"``, digits, ``"+"``/``"-"``); what follows
        the first token is ignored.

        Raises:
            ModelError: when the backend cannot score options (``capabilities.option_logprobs`` is false), or
                two options share their first token.
        """
        ...

    def close(self) -> None:
        """Release what the backend holds (connections, ...); calling it twice is fine."""
        ...


def estimate_tokens(messages: list[Message]) -> int:
    """A conservative prompt-token estimate for backends without a tokenizer: ``len(content) // 3 + 4`` each."""
    return sum(len(m["content"]) // 3 + 4 for m in messages)


class BaseBackend:
    """Convenience base: implement either :meth:`generate` or :meth:`generate_batch`; the rest has defaults.

    Subclasses set :attr:`backend_name` and :attr:`capabilities` truthfully (an instance attribute when a
    value depends on the loaded model, such as the context window).
    """

    spec: str = "base"
    backend_name: str = "base"
    #: ``True`` for backends that run a real model; guarded in unit tests.
    real: bool = True
    #: Nothing special: no batched decoding, ``stream`` yields the whole text at once, no logprobs.
    capabilities: ModelCapabilities = ModelCapabilities()
    load_info: Mapping[str, Any] = MappingProxyType({})

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation."""
        return self.generate_batch([messages], params)[0]

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation (default: one call each)."""
        return [self.generate(messages, params) for messages in conversations]

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the text of one completion as it is generated; the generator returns the :class:`Completion`.

        The default yields the whole text of :meth:`generate` at once; backends that can stream override it.
        ``params.n`` is ignored (one completion). The yielded pieces never include a stop sequence.
        """
        completion = self.generate(messages, params.model_copy(update={"n": 1}))[0]
        if completion.text:
            yield completion.text
        return completion

    def count_tokens(self, messages: list[Message]) -> int:
        """Return the prompt tokens of ``messages``; the default is :func:`estimate_tokens` (no tokenizer)."""
        return estimate_tokens(messages)

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` as the reply's first token (see :meth:`ModelBackend.option_logprobs`).

        Raises:
            ModelError: always here: this backend cannot score options (``capabilities.option_logprobs``).
        """
        raise ModelError(f"the {self.backend_name} backend ({self.spec}) cannot score options "
                         "(capabilities.option_logprobs is false); sample a reply instead")

    def close(self) -> None:
        """Release what the backend holds; the default holds nothing."""

    def check_allowed(self) -> None:
        """Raise when a real model is called while ``PONDER_FORBID_REAL_MODEL`` is set (unit tests)."""
        if self.real and os.environ.get(FORBID_REAL_MODEL_ENV):
            raise RealModelCallError(
                f"real model '{self.spec}' called while {FORBID_REAL_MODEL_ENV} is set: unit tests must "
                "use the scripted model (mark the test 'integration' to allow real models)"
            )


def first_token_ids(options: Sequence[str], tokenize: Callable[[str], list[int]]) -> list[int]:
    """The first token id of each option, as ``tokenize`` (no special tokens, no BOS) splits it.

    Raises:
        ModelError: for no options, an option with no token, or two options sharing their first token.
    """
    if not options:
        raise ModelError("option_logprobs needs at least one option")
    ids: list[int] = []
    for option in options:
        tokens = tokenize(option)
        if not tokens:
            raise ModelError(f"the option {option!r} has no tokens")
        if tokens[0] in ids:
            other = options[ids.index(tokens[0])]
            raise ModelError(f"the options {other!r} and {option!r} begin with the same token; the first token "
                             "decides, so options must begin with distinct tokens")
        ids.append(tokens[0])
    return ids


def floored(logprobs: Sequence[float]) -> list[float]:
    """Log-probabilities with ``-inf``/NaN and anything below :data:`LOGPROB_FLOOR` raised to the floor."""
    return [v if v == v and v > LOGPROB_FLOOR else LOGPROB_FLOOR for v in (float(x) for x in logprobs)]


def truncate_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence.

    Returns:
        The cut text and whether a stop sequence was found.
    """
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut], cut < len(text)


def stop_in_tail(text: bytes | bytearray, piece_len: int, stops: list[str]) -> bool:
    """Whether a stop sequence shows up in the tail of byte-level output after a piece of ``piece_len`` bytes.

    Only the last piece plus the longest stop sequence (and a few bytes for split UTF-8) is decoded, so the check
    costs the same at every token.
    """
    longest = max((len(s.encode("utf-8")) for s in stops if s), default=0)
    tail = bytes(text[-(piece_len + longest + 3):]).decode("utf-8", "ignore")
    return any(s in tail for s in stops if s)


def completion_from_pieces(pieces: list[bytes], stop: list[str], *, hit_end: bool, prompt_tokens: int,
                           logprobs: list[float] | None) -> Completion:
    """The :class:`Completion` of token-level output (one ``bytes`` piece per token).

    The text is cut before the first stop sequence; the token count (and log-probability sum, when
    ``logprobs`` are given) covers only the tokens that produced the kept text.
    """
    raw = b"".join(pieces).decode("utf-8", errors="ignore")
    text, found = truncate_at_stop(raw, stop)
    count = len(pieces)
    if found:
        target, total, count = len(text.encode("utf-8")), 0, 0
        while count < len(pieces) and total < target:
            total += len(pieces[count])
            count += 1
    finish: FinishReason = "stop" if found or hit_end else "length"
    return Completion(text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=count,
                      logprob=float(sum(logprobs[:count])) if logprobs is not None else None)


class StopFilter:
    """Incremental stop-sequence handling for streamed text.

    :meth:`feed` returns the new text that is safe to show: text is held back while its tail could be the
    start of a stop sequence, and nothing from a stop sequence on is ever returned.
    """

    def __init__(self, stop: list[str]) -> None:
        self.stop = [s for s in stop if s]
        self.text = ""
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add ``piece`` and return the text that became safe to emit."""
        if self.stopped or not piece:
            return ""
        self.text += piece
        cut, found = truncate_at_stop(self.text, self.stop)
        if found:
            self.stopped = True
            self.text = cut
            return self._emit(len(cut))
        return self._emit(len(self.text) - self._partial())

    def finish(self) -> str:
        """Return the text still held back (the stream has ended without a stop sequence)."""
        return self._emit(len(self.text))

    def _emit(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out

    def _partial(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop sequence."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(self.text)), best, -1):
                if self.text.endswith(s[:n]):
                    best = n
                    break
        return best
