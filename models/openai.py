"""Backend for any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp's server, TGI or the OpenAI API.

Spec: ``openai:<model>@<base_url>`` (e.g. ``openai:smollm2@http://127.0.0.1:8000/v1``). Without a base URL,
``OPENAI_BASE_URL`` or the official API is used.

The official ``openai`` client does the retrying: 408, 409, 429 and 5xx answers, connection errors and timeouts
are retried up to ``max_retries`` times with the SDK's exponential backoff (honouring ``Retry-After`` up to two
minutes). What fails after the retries surfaces as one clear :class:`~ponder.core.errors.ModelError` that says
how many attempts were made.

Grammars (``GenerationParams.grammar``, GBNF) go to servers that take them -- llama.cpp's server (``grammar``),
vLLM (``structured_outputs`` / ``guided_grammar``) -- in the request body; which option a server takes is asked once
per backend, on the first read of :attr:`OpenAIBackend.capabilities` (:mod:`ponder.models.openai_grammar`).
A server without one gets no grammar (logged once) and ``capabilities.grammar`` is ``False``.

Native tool calling (``GenerationParams.tools`` / ``tool_choice``, read back into ``Completion.tool_calls``) and
JSON-Schema replies (``GenerationParams.json_schema`` sent as ``response_format``) go to servers that support them;
whether a server does is asked once per backend with two tiny probe requests, on the first read of
:attr:`OpenAIBackend.capabilities` (:mod:`ponder.models.openai_tools`). Messages with ``tool_calls`` and role
``tool`` messages are passed through as they are.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ponder.core.errors import MissingExtraError, ModelError, RealModelCallError
from ponder.models.base import (
    BaseBackend,
    Completion,
    FinishReason,
    GenerationParams,
    Message,
    ModelCapabilities,
    OptionLogprobs,
    StopFilter,
    truncate_at_stop,
)
from ponder.models.openai_grammar import ServerGrammar
from ponder.models.openai_options import first_top_logprobs, match_options, option_request
from ponder.models.openai_response import (
    ServerUnavailableError,
    attempts,
    server_at_fault,
    split_tokens,
    status_message,
    sum_logprobs,
)
from ponder.models.openai_tools import PROBE_TIMEOUT_S, ServerFeatures, read_tool_calls

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion

    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import OpenAISettings

logger = logging.getLogger("ponder.models")

#: Used when the spec has no base URL and ``OPENAI_BASE_URL`` is unset.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The OpenAI API accepts at most this many stop sequences; the rest are applied client-side.
MAX_SERVER_STOPS = 4
#: Header the SDK puts on every request: how many retries came before it.
_RETRY_COUNT_HEADER = "x-stainless-retry-count"
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "tool_calls": "stop",
    "function_call": "stop",
    "content_filter": "error",
    "error": "error",
    "abort": "error",
}


class OpenAIBackend(BaseBackend):
    """A model served over the OpenAI chat-completions API.

    Args:
        model: The model name the server knows (``--served-model-name`` / ``--model_alias``).
        base_url: The server's base URL, ending in ``/v1``.
        api_key: The API key (local servers usually accept anything).
        timeout: Seconds per HTTP request.
        max_retries: Retries after the first attempt for 408/409/429/5xx, connection errors and timeouts (the
            ``openai`` SDK's own retries and backoff).
        concurrency: Most HTTP requests in flight at once from this backend (batches and ``n`` top-ups).
        context_window: The served model's context size in tokens, when known (``capabilities.context_window``);
            ``None``: unknown. :meth:`count_tokens` estimates (the server's tokenizer is not at hand).
        real: Whether the unit-test guard applies (``PONDER_FORBID_REAL_MODEL``). Pass ``False`` only
            for a test-owned fake server that runs no model.
        tool_calls: Whether the server does native tool calling, when known; ``None`` (default): asked once.
        json_schema: Whether the server honours ``response_format`` JSON Schemas (the standard form), when
            known; ``None`` (default): asked once.

    Raises:
        MissingExtraError: when the ``openai`` package is not installed.
    """

    backend_name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "",
        *,
        api_key: str = "EMPTY",
        timeout: float = 120.0,
        max_retries: int = 3,
        concurrency: int = 8,
        context_window: int | None = None,
        real: bool = True,
        tool_calls: bool | None = None,
        json_schema: bool | None = None,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise MissingExtraError("openai", "openai", "The openai backend") from None
        self._openai = openai
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.spec = f"openai:{model}@{self.base_url}"
        self.real = real
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self._capabilities = ModelCapabilities(streaming=True, logprobs=True, context_window=context_window,
                                               continuous_batching=True, option_logprobs=True)
        #: Whether the server gives log-probabilities for option scoring: ``None`` until the first scoring call.
        self._options_supported: bool | None = None
        #: How the server takes a grammar, asked on first use.
        self._grammar = ServerGrammar(self.base_url, api_key)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout,
                                     max_retries=max_retries)
        #: Native tool calls and JSON-Schema replies, asked on first use.
        self._features = ServerFeatures(self.base_url, model, self.probe, tool_calls=tool_calls,
                                        json_schema=json_schema)

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: OpenAISettings) -> OpenAIBackend:
        """Build the backend for a parsed ``openai:`` spec.

        The API key is ``settings.openai_api_key`` unless that is the default ``EMPTY`` and
        ``OPENAI_API_KEY`` is set.
        """
        api_key = settings.openai_api_key
        if api_key == "EMPTY" and os.environ.get("OPENAI_API_KEY"):
            api_key = os.environ["OPENAI_API_KEY"]
        return cls(
            parsed.model,
            parsed.base_url,
            api_key=api_key,
            timeout=settings.openai_timeout,
            max_retries=settings.openai_max_retries,
            concurrency=settings.openai_concurrency,
            context_window=settings.openai_context_window,
        )

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` as the reply's first token (:mod:`ponder.models.openai_options`: ``top_logprobs=20``).

        A server that answers without log-probabilities is asked once: ``capabilities.option_logprobs`` is then
        false and every call raises :class:`ModelError` (as do rejected requests and bad options).
        """
        self.check_allowed()
        match_options([], options)  # checks the options before any request
        if self._options_supported is False:
            return super().option_logprobs(messages, options)
        response = self._create(option_request(self.model, messages))
        top = first_top_logprobs(response)
        if top is None:
            self._options_supported = False
            raise ModelError(f"{self.base_url} returned no log-probabilities for {self.model!r}: it cannot score "
                             "options (capabilities.option_logprobs is now false)")
        self._options_supported = True
        usage = response.usage
        return OptionLogprobs(logprobs=match_options(top, options),
                              prompt_tokens=(usage.prompt_tokens or 0) if usage else 0)

    def close(self) -> None:
        """Close the HTTP connections of the client (a later call opens new ones)."""
        self._client.close()

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        """Streaming, logprobs, N requests in flight; ``grammar``, ``tool_calls`` and ``json_schema`` as supported.

        What the server supports is asked once, on the first read (:class:`ServerGrammar`,
        :class:`~ponder.models.openai_tools.ServerFeatures`), and never changes afterwards.
        """
        features = self._features.features if self._probe_allowed() else None
        found = {"grammar": self._grammar.supported, "tool_calls": bool(features and features.tool_calls),
                 "json_schema": bool(features and features.response_format)}
        updated = self._capabilities.model_copy(update=found)
        if updated != self._capabilities:
            self._capabilities = updated
        if self._capabilities.option_logprobs != (self._options_supported is not False):
            self._capabilities = self._capabilities.model_copy(update={"option_logprobs": False})
        return self._capabilities

    # -- public API ---------------------------------------------------------------------------------

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Return ``params.n`` completions for one conversation.

        Asks the server for ``n`` choices at once; when it returns fewer (llama.cpp's server ignores
        ``n``), the missing ones are requested concurrently, the ``i``-th sample with seed ``seed + i``.

        Raises:
            ModelError: when the server rejects the request or stays unreachable after the retries.
            RealModelCallError: in unit tests (see :meth:`BaseBackend.check_allowed`).
        """
        self.check_allowed()
        completions = self._request(messages, params, params.n, params.seed)
        missing = params.n - len(completions)
        if missing > 0:
            first = len(completions)
            seeds = [None if params.seed is None else params.seed + first + i for i in range(missing)]
            with ThreadPoolExecutor(max_workers=min(missing, self.concurrency)) as pool:
                for extra in pool.map(lambda s: self._request(messages, params, 1, s), seeds):
                    completions.extend(extra[:1])
        return completions[: params.n]

    def generate_batch(
        self, conversations: list[list[Message]], params: GenerationParams
    ) -> list[list[Completion]]:
        """Return ``params.n`` completions per conversation, requested concurrently, in input order.

        At most ``concurrency`` HTTP requests are in flight at once across the whole batch.
        """
        self.check_allowed()
        if len(conversations) <= 1:
            return [self.generate(c, params) for c in conversations]
        with ThreadPoolExecutor(max_workers=min(len(conversations), self.concurrency)) as pool:
            return list(pool.map(lambda c: self.generate(c, params), conversations))

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Yield the text of one completion as the server streams it (``stream=True``); return the completion.

        Failures before the first chunk are retried like :meth:`generate`; a stream that breaks
        midway raises :class:`ModelError`. Token counts come from the server's final usage chunk when it
        sends one (``stream_options.include_usage``), else the number of content chunks is used. A request with
        tools to a server with native tool calls is not streamed: its text comes at once, its calls in the completion.
        """
        self.check_allowed()
        if params.tools and self._features.features.tool_calls:
            completion = self.generate(messages, params.model_copy(update={"n": 1}))[0]
            if completion.text:
                yield completion.text
            return completion
        stops = [s for s in params.stop if s]
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "temperature": params.temperature,
            "top_p": params.top_p, "max_tokens": params.max_tokens, "stream": True,
            "stream_options": {"include_usage": True},
        }
        if stops:
            kwargs["stop"] = stops[:MAX_SERVER_STOPS]
        if params.seed is not None:
            kwargs["seed"] = params.seed
        kwargs.update(self._grammar.request_kwargs(params.grammar))
        kwargs.update(self._features.request_kwargs(params.model_copy(update={"tools": None})))
        shown = StopFilter(stops)
        chunks, finish, usage = 0, "stop", None
        response = self._create(kwargs)
        try:
            for chunk in response:
                usage = chunk.usage or usage
                for choice in chunk.choices or []:
                    piece = choice.delta.content or ""
                    chunks += 1 if piece else 0
                    finish = choice.finish_reason or finish
                    delta = shown.feed(piece)
                    if delta:
                        yield delta
                if shown.stopped and len(stops) > MAX_SERVER_STOPS:  # the server does not know this stop
                    break
        except self._openai.APIError as exc:
            raise ServerUnavailableError(f"the stream from {self.base_url} broke: {exc}") from None
        finally:
            response.close()
        rest = shown.finish()
        if rest:
            yield rest
        return Completion(
            text=shown.text, finish_reason="stop" if shown.stopped else _FINISH.get(finish, "stop"),
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or chunks) if usage else chunks,
        )

    # -- one request ----------------------------------------------------------------------------------

    def _request(
        self, messages: list[Message], params: GenerationParams, n: int, seed: int | None
    ) -> list[Completion]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if n > 1:
            kwargs["n"] = n
        stops = [s for s in params.stop if s]
        if stops:
            kwargs["stop"] = stops[:MAX_SERVER_STOPS]
        if seed is not None:
            kwargs["seed"] = seed
        if params.logprobs:
            # top_logprobs=0 is valid for OpenAI/vLLM and needed by llama-cpp-python to return any logprobs.
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = 0
        kwargs.update(self._grammar.request_kwargs(params.grammar))
        kwargs.update(self._features.request_kwargs(params))
        response = self._create(kwargs)
        return self._convert(response, stops, params.logprobs)

    def _convert(self, response: ChatCompletion, stops: list[str], logprobs: bool) -> list[Completion]:
        if not response.choices:  # the SDK builds responses leniently: a missing field reads as None
            raise ModelError(f"{self.base_url} returned no choices: {str(response)[:300]}")
        usage = response.usage
        prompt_tokens = (usage.prompt_tokens or 0) if usage else 0
        total_completion = (usage.completion_tokens or 0) if usage else 0
        choices = sorted(response.choices, key=lambda c: c.index or 0)
        texts: list[str] = []
        cut_flags: list[bool] = []
        for choice in choices:
            text, cut = truncate_at_stop(choice.message.content or "", stops)
            texts.append(text)
            cut_flags.append(cut)
        counts = split_tokens(total_completion, choices)
        out = []
        for choice, text, cut, count in zip(choices, texts, cut_flags, counts, strict=True):
            finish = "stop" if cut else _FINISH.get(choice.finish_reason or "stop", "stop")
            out.append(
                Completion(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=count,
                    logprob=sum_logprobs(choice, len(text) if cut else None) if logprobs else None,
                    tool_calls=read_tool_calls(choice.message),
                )
            )
        return out

    # -- the request and its failures ------------------------------------------------------------------

    def _probe_allowed(self) -> bool:
        """Whether probe requests may be sent: not for a real server in unit tests (its features read as absent)."""
        try:
            self.check_allowed()
        except RealModelCallError:
            return False
        return True

    def share_probes(self, grammar: ServerGrammar, features: ServerFeatures) -> None:
        """Take the answers about what the server supports from ``grammar`` and ``features`` (asked elsewhere).

        A pool of identical replicas (:mod:`ponder.models.openai_pool`) asks once for all its members.
        """
        self._grammar, self._features = grammar, features

    def probe(self, kwargs: dict[str, Any]) -> Any:
        """One feature probe (:mod:`ponder.models.openai_tools`): no retries; ``None`` when it is refused or fails."""
        client = self._client.with_options(max_retries=0, timeout=min(self.timeout, PROBE_TIMEOUT_S))
        try:
            with self._slots:
                return client.chat.completions.create(**kwargs)
        except self._openai.APIError as exc:
            logger.debug("%s: probe %s refused: %s", self.base_url, sorted(kwargs), exc)
            return None

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """Call ``chat.completions.create`` (the SDK retries); map what still fails to :class:`ModelError`."""
        oa = self._openai
        try:
            with self._slots:
                return self._client.chat.completions.create(**kwargs)
        except oa.APIStatusError as exc:
            error = ServerUnavailableError if server_at_fault(exc.status_code) else ModelError
            raise error(status_message(exc, self.base_url, self.model, self.max_retries)) from None
        except oa.APITimeoutError as exc:
            raise ServerUnavailableError(
                f"request to {self.base_url} timed out after {self.timeout:g}s ({attempts(exc)}); "
                "raise openai_timeout or check the server's load"
            ) from None
        except oa.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise ServerUnavailableError(
                f"cannot connect to the OpenAI-compatible server at {self.base_url} after {attempts(exc)} "
                f"({type(cause).__name__}: {cause}); is the server running? Start it (e.g. 'vllm serve <model>' "
                "or 'python -m llama_cpp.server --model <file.gguf>') or fix the URL in the model spec"
            ) from None
        except oa.APIError as exc:  # e.g. a 200 response that is not a chat completion
            raise ModelError(f"bad response from {self.base_url}: {exc.message}") from None
