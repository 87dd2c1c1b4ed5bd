"""Backend for any OpenAI-compatible chat server: vLLM, SGLang, llama.cpp's server, TGI or the OpenAI API.

Spec: ``openai:<model>@<base_url>`` (e.g. ``openai:smollm2@http://127.0.0.1:8000/v1``). Without a base URL,
``OPENAI_BASE_URL`` or the official API is used.

The official ``openai`` client is used with its own retries switched off: this module retries 429, 408,
5xx, connection errors and timeouts itself (bounded, exponential backoff with jitter, honouring
``Retry-After``) so that failures surface as one clear :class:`~ponder.core.errors.ModelError`.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ponder.core.errors import MissingExtraError, ModelError
from ponder.models.base import (
    BaseBackend,
    Completion,
    FinishReason,
    GenerationParams,
    Message,
    StopFilter,
    truncate_at_stop,
)

if TYPE_CHECKING:
    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import Settings

#: Used when the spec has no base URL and ``OPENAI_BASE_URL`` is unset.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The OpenAI API accepts at most this many stop sequences; the rest are applied client-side.
MAX_SERVER_STOPS = 4
_RETRY_STATUS = {408, 429}
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
        max_retries: Retries after the first attempt for 429/408/5xx, connection errors and timeouts.
        concurrency: Most HTTP requests in flight at once from this backend (batches and ``n`` top-ups).
        backoff_base: First retry delay in seconds; doubled each retry, with jitter, up to ``backoff_max``.
        backoff_max: Cap on the computed backoff delay.
        retry_after_cap: Cap on a server-provided ``Retry-After`` delay.
        real: Whether the unit-test guard applies (``PONDER_FORBID_REAL_MODEL``). Pass ``False`` only
            for a test-owned fake server that runs no model.

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
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_cap: float = 60.0,
        real: bool = True,
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
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_cap = retry_after_cap
        self._slots = threading.BoundedSemaphore(concurrency)
        self._client = openai.OpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: Settings) -> OpenAIBackend:
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
        )

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

        Connection problems before the first chunk are retried like :meth:`generate`; a stream that breaks
        midway raises :class:`ModelError`. Token counts come from the server's final usage chunk when it
        sends one (``stream_options.include_usage``), else the number of content chunks is used.
        """
        self.check_allowed()
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
        shown = StopFilter(stops)
        chunks, finish, usage = 0, "stop", None
        response = self._create(kwargs)
        try:
            for chunk in response:
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    piece = getattr(choice.delta, "content", None) or ""
                    chunks += 1 if piece else 0
                    finish = choice.finish_reason or finish
                    delta = shown.feed(piece)
                    if delta:
                        yield delta
                if shown.stopped and len(stops) > MAX_SERVER_STOPS:  # the server does not know this stop
                    break
        except self._openai.APIError as exc:
            raise ModelError(f"the stream from {self.base_url} broke: {exc}") from None
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()
        rest = shown.finish()
        if rest:
            yield rest
        return Completion(
            text=shown.text, finish_reason="stop" if shown.stopped else _FINISH.get(finish, "stop"),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or chunks),
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
        response = self._create(kwargs)
        return self._convert(response, stops, params.logprobs)

    def _convert(self, response: Any, stops: list[str], logprobs: bool) -> list[Completion]:
        if not getattr(response, "choices", None):
            raise ModelError(f"{self.base_url} returned no choices: {str(response)[:300]}")
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        total_completion = int(getattr(usage, "completion_tokens", 0) or 0)
        choices = sorted(response.choices, key=lambda c: c.index or 0)
        texts: list[str] = []
        cut_flags: list[bool] = []
        for choice in choices:
            text, cut = truncate_at_stop(choice.message.content or "", stops)
            texts.append(text)
            cut_flags.append(cut)
        counts = _split_tokens(total_completion, choices)
        out = []
        for choice, text, cut, count in zip(choices, texts, cut_flags, counts, strict=True):
            finish = "stop" if cut else _FINISH.get(choice.finish_reason or "stop", "stop")
            out.append(
                Completion(
                    text=text,
                    finish_reason=finish,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=count,
                    logprob=_sum_logprobs(choice, len(text) if cut else None) if logprobs else None,
                )
            )
        return out

    # -- retries ----------------------------------------------------------------------------------------

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """Call ``chat.completions.create`` with bounded retries; map failures to :class:`ModelError`."""
        oa = self._openai
        attempt = 0
        while True:
            try:
                with self._slots:
                    return self._client.chat.completions.create(**kwargs)
            except oa.APIStatusError as exc:
                status = exc.status_code
                if status not in _RETRY_STATUS and status < 500:
                    raise ModelError(self._status_message(exc)) from None
                if attempt >= self.max_retries:
                    raise ModelError(
                        f"{self.base_url} kept failing with HTTP {status} after {attempt + 1} attempts: "
                        f"{_server_message(exc)}"
                    ) from None
                delay = self._retry_after(exc)
            except oa.APITimeoutError:
                if attempt >= self.max_retries:
                    raise ModelError(
                        f"request to {self.base_url} timed out after {self.timeout:g}s "
                        f"({attempt + 1} attempts); raise openai_timeout or check the server's load"
                    ) from None
                delay = None
            except oa.APIConnectionError as exc:
                if attempt >= self.max_retries:
                    cause = exc.__cause__ or exc
                    raise ModelError(
                        f"cannot connect to the OpenAI-compatible server at {self.base_url} after "
                        f"{attempt + 1} attempts ({type(cause).__name__}: {cause}); is the server running? "
                        "Start it (e.g. 'vllm serve <model>' or 'python -m llama_cpp.server --model "
                        "<file.gguf>') or fix the URL in the model spec"
                    ) from None
                delay = None
            except oa.APIError as exc:  # e.g. a 200 response that is not a chat completion
                raise ModelError(f"bad response from {self.base_url}: {exc.message}") from None
            if delay is None:
                delay = min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(0.5, 1.0)
            time.sleep(delay)
            attempt += 1

    def _retry_after(self, exc: Any) -> float | None:
        """Return the server's ``Retry-After`` delay (capped), or ``None`` when it gives none."""
        headers = exc.response.headers
        value = headers.get("retry-after-ms")
        if value is not None:
            try:
                return min(self.retry_after_cap, max(0.0, float(value) / 1000))
            except ValueError:
                pass
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                return None
        return min(self.retry_after_cap, max(0.0, seconds))

    def _status_message(self, exc: Any) -> str:
        status, detail = exc.status_code, _server_message(exc)
        if status == 401:
            return (
                f"{self.base_url} rejected the API key (HTTP 401: {detail}); set PONDER_OPENAI_API_KEY "
                "(or OPENAI_API_KEY) to a key the server accepts"
            )
        if status == 404:
            return (
                f"{self.base_url} answered HTTP 404 for model {self.model!r}: {detail} (check the model name "
                "the server serves and that the base URL ends in /v1)"
            )
        return f"{self.base_url} rejected the request (HTTP {status}): {detail}"


def _server_message(exc: Any) -> str:
    """Extract the human-readable message from an OpenAI-style or FastAPI-style error body."""
    body = exc.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else str(value)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return str(exc.message)


def _split_tokens(total: int, choices: list[Any]) -> list[int]:
    """Split the response's completion tokens over its choices.

    Uses the per-choice logprob token counts when every choice has them, else shares ``total`` in
    proportion to text length (largest remainder, so the parts add up to ``total``).
    """
    if len(choices) <= 1:
        return [total] * len(choices)
    exact = [_logprob_tokens(c) for c in choices]
    if all(x is not None for x in exact):
        return [int(x) for x in exact]  # type: ignore[arg-type]
    weights = [len(c.message.content or "") + 1 for c in choices]
    scale = total / sum(weights)
    parts = [int(w * scale) for w in weights]
    order = sorted(range(len(weights)), key=lambda i: weights[i] * scale - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _logprob_tokens(choice: Any) -> int | None:
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    return len(content) if content else None


def _sum_logprobs(choice: Any, keep_chars: int | None) -> float | None:
    """Sum the choice's token logprobs; with ``keep_chars``, only tokens starting before that offset."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    total, pos = 0.0, 0
    for tok in content:
        if keep_chars is not None and pos >= keep_chars:
            break
        total += float(tok.logprob)
        pos += len(tok.token or "")
    return total
