"""Reading an OpenAI-compatible server's answers: error messages, token counts and log-probabilities per choice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ponder.core.errors import ModelError

if TYPE_CHECKING:
    from openai import APIError
    from openai.types.chat.chat_completion import Choice

#: Header the SDK puts on every request: how many retries came before it.
RETRY_COUNT_HEADER = "x-stainless-retry-count"


class ServerUnavailableError(ModelError):
    """The server, not the request, failed: no connection, a timeout, a broken stream or a retried status.

    The retried statuses are the SDK's: 408, 409, 429 and 5xx. A pool of servers (:mod:`ponder.models.openai_pool`)
    takes such a server out and sends the request to another; other errors (4xx) are the request's fault.
    """


def server_at_fault(status: int) -> bool:
    """Whether an HTTP status is the server's fault (the statuses the SDK retries: 408, 409, 429, 5xx)."""
    return status in (408, 409, 429) or status >= 500


def attempt_count(exc: APIError) -> int:
    """How many attempts the SDK made up to ``exc``: its requests carry the number of retries before them."""
    return 1 + int(exc.request.headers.get(RETRY_COUNT_HEADER, "0") or 0)


def attempts(exc: APIError) -> str:
    """:func:`attempt_count` in words: ``1 attempt``, ``3 attempts``."""
    count = attempt_count(exc)
    return "1 attempt" if count == 1 else f"{count} attempts"


def server_message(exc: Any) -> str:
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


def split_tokens(total: int, choices: list[Choice]) -> list[int]:
    """Split the response's completion tokens over its choices.

    Uses the per-choice logprob token counts when every choice has them, else shares ``total`` in
    proportion to text length (largest remainder, so the parts add up to ``total``).
    """
    if len(choices) <= 1:
        return [total] * len(choices)
    exact = [logprob_tokens(c) for c in choices]
    if all(x is not None for x in exact):
        return [int(x) for x in exact]  # type: ignore[arg-type]
    weights = [len(c.message.content or "") + 1 for c in choices]
    scale = total / sum(weights)
    parts = [int(w * scale) for w in weights]
    order = sorted(range(len(weights)), key=lambda i: weights[i] * scale - parts[i], reverse=True)
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


def logprob_tokens(choice: Choice) -> int | None:
    """How many tokens a choice's log-probabilities cover (``None``: it has none)."""
    content = choice.logprobs.content if choice.logprobs else None
    return len(content) if content else None


def sum_logprobs(choice: Choice, keep_chars: int | None) -> float | None:
    """Sum the choice's token logprobs; with ``keep_chars``, only tokens starting before that offset."""
    content = choice.logprobs.content if choice.logprobs else None
    if not content:
        return None
    total, pos = 0.0, 0
    for tok in content:
        if keep_chars is not None and pos >= keep_chars:
            break
        total += float(tok.logprob)
        pos += len(tok.token or "")
    return total


def status_message(exc: Any, base_url: str, model: str, max_retries: int) -> str:
    """The message for an HTTP error answer: the fix for 401 and 404, the attempts for retried statuses."""
    status, detail = exc.status_code, server_message(exc)
    if status == 401:
        return (
            f"{base_url} rejected the API key (HTTP 401: {detail}); set PONDER_OPENAI_API_KEY "
            "(or OPENAI_API_KEY) to a key the server accepts"
        )
    if status == 404:
        return (
            f"{base_url} answered HTTP 404 for model {model!r}: {detail} (check the model name "
            "the server serves and that the base URL ends in /v1)"
        )
    if server_at_fault(status):
        wait = exc.response.headers.get("retry-after")
        stopped_early = wait and attempt_count(exc) <= max_retries  # the SDK waits 2 minutes at most
        asked = f" (not retried: the server asked to wait {wait}s)" if stopped_early else ""
        return f"{base_url} kept failing with HTTP {status} after {attempts(exc)}{asked}: {detail}"
    return f"{base_url} rejected the request (HTTP {status}): {detail}"
