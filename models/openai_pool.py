"""One model served by several identical OpenAI-compatible servers: ``openai:<model>@<url1>,<url2>,...``.

:class:`OpenAIPool` is a backend over one :class:`~ponder.models.openai.OpenAIBackend` per URL (or per entry of
``openai_base_urls`` in ``ponder.toml``, when the spec names no URL). Routing (:mod:`ponder.models.openai_router`):
a session's requests (an eval episode, a ``ponder run``; :mod:`ponder.models.affinity`) stay on one server so its
prefix cache is reused; other requests go to the healthy server with the fewest in flight.

Failover: a server that fails through its own fault -- no connection, a timeout, HTTP 408/409/429/5xx, a stream
broken before its first token (:class:`~ponder.models.openai_response.ServerUnavailableError`) -- is taken out
(backoff from 1 s doubling to 60 s) and the request is sent at once to another server; after its backoff one request
probes it and any answer brings it back. A 4xx answer (a bad request, a prompt over the context) is the request's
fault: the server stays in and the error surfaces as with one server. When every server is out the request waits
for the soonest backoff, at most ``openai_max_retries`` times, then one :class:`~ponder.core.errors.ModelError`
names every server and its last error. The members' own clients do not retry (failover is the retry), so a dead
server costs one connection attempt.

A stream fails over only before its first piece; a stream that breaks later raises as with one server.

The servers are assumed to be replicas of one model: what they support (grammar option, native tool calls,
JSON-Schema replies) is asked once, through the pool -- the probes go to one healthy member -- and shared by all.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ponder.core.errors import ModelError
from ponder.models.affinity import session_key
from ponder.models.base import BaseBackend, Completion, GenerationParams, Message, ModelCapabilities, OptionLogprobs
from ponder.models.openai import OpenAIBackend
from ponder.models.openai_grammar import ServerGrammar
from ponder.models.openai_response import ServerUnavailableError
from ponder.models.openai_router import Lease, Router
from ponder.models.openai_tools import ServerFeatures

if TYPE_CHECKING:
    from ponder.core.model_spec import ModelSpec
    from ponder.core.settings import OpenAISettings

logger = logging.getLogger("ponder.models")
T = TypeVar("T")


class OpenAIPool(BaseBackend):
    """A model behind several identical OpenAI-compatible servers (see the module docstring).

    Args:
        model: The model name the servers know.
        base_urls: Two or more distinct base URLs (ending in ``/v1``).
        max_retries: Waits for a server to come back when all are out, before the request fails.
        concurrency: Most requests in flight per server from this pool.
        real: Whether the unit-test guard applies (``False`` only for test-owned fake servers).
        **member: Passed to each :class:`OpenAIBackend` (``api_key``, ``timeout``, ``context_window``,
            ``tool_calls``, ``json_schema``).

    Raises:
        ModelError: for fewer than two URLs.
    """

    backend_name = "openai"

    def __init__(self, model: str, base_urls: Sequence[str], *, max_retries: int = 3, concurrency: int = 8,
                 real: bool = True, **member: Any) -> None:
        if len(base_urls) < 2:
            raise ModelError(f"a pool needs two or more base URLs, got {list(base_urls)}")
        self.model = model
        self.members = [OpenAIBackend(model, url, max_retries=0, concurrency=concurrency, real=real, **member)
                        for url in base_urls]
        self.spec = f"openai:{model}@{','.join(m.base_url for m in self.members)}"
        self.real = real
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.router = Router([m.base_url for m in self.members])
        grammar = _PoolGrammar(self, member.get("api_key", "EMPTY"))
        features = ServerFeatures(self.members[0].base_url, model, self._probe,
                                  tool_calls=member.get("tool_calls"), json_schema=member.get("json_schema"))
        for backend in self.members:
            backend.share_probes(grammar, features)

    @classmethod
    def from_settings(cls, parsed: ModelSpec, settings: OpenAISettings) -> OpenAIPool:
        """The pool for a parsed ``openai:`` spec: its URLs, else ``settings.openai_base_urls``.

        The API key is ``settings.openai_api_key`` unless that is the default ``EMPTY`` and ``OPENAI_API_KEY`` is
        set (as for one server).
        """
        api_key = settings.openai_api_key
        if api_key == "EMPTY" and os.environ.get("OPENAI_API_KEY"):
            api_key = os.environ["OPENAI_API_KEY"]
        return cls(parsed.model, parsed.base_urls or settings.openai_base_urls, api_key=api_key,
                   timeout=settings.openai_timeout, max_retries=settings.openai_max_retries,
                   concurrency=settings.openai_concurrency, context_window=settings.openai_context_window)

    # -- what the pool is --------------------------------------------------------------------------------

    @property
    def capabilities(self) -> ModelCapabilities:  # type: ignore[override]
        """One member's capabilities (the probes are shared), ``option_logprobs`` only where every member scores."""
        first = self.members[0].capabilities
        if first.option_logprobs and not all(m.capabilities.option_logprobs for m in self.members[1:]):
            return first.model_copy(update={"option_logprobs": False})
        return first

    @property
    def load_info(self) -> Mapping[str, Any]:  # type: ignore[override]
        """The servers with their counts: requests, failures, ejections, in flight, healthy, last error."""
        return {"servers": self.router.counts()}

    def count_tokens(self, messages: list[Message]) -> int:
        """The prompt-token estimate of one member (no request is sent)."""
        return self.members[0].count_tokens(messages)

    def close(self) -> None:
        """Close every member's HTTP connections."""
        for backend in self.members:
            backend.close()

    # -- requests -----------------------------------------------------------------------------------------

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """``params.n`` completions from one server (the session's, else the least busy); fails over.

        Raises:
            ModelError: for a request the server rejects (4xx), or when every server stays out.
        """
        self.check_allowed()
        return self._call(session_key(), lambda m: m.generate(messages, params))

    def generate_batch(self, conversations: list[list[Message]], params: GenerationParams) -> list[list[Completion]]:
        """``params.n`` completions per conversation, requested concurrently over the servers, in input order.

        The conversations share the caller's session (one server when it has one).
        """
        self.check_allowed()
        key = session_key()
        if len(conversations) <= 1:
            return [self._call(key, lambda m, c=c: m.generate(c, params)) for c in conversations]
        workers = min(len(conversations), self.concurrency * len(self.members))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda c: self._call(key, lambda m: m.generate(c, params)), conversations))

    def option_logprobs(self, messages: list[Message], options: Sequence[str]) -> OptionLogprobs:
        """Score ``options`` on one server (see :meth:`OpenAIBackend.option_logprobs`); fails over."""
        self.check_allowed()
        return self._call(session_key(), lambda m: m.option_logprobs(messages, options))

    def stream(self, messages: list[Message], params: GenerationParams) -> Generator[str, None, Completion]:
        """Stream one completion from one server; a server that fails before the first piece is replaced.

        Raises:
            ModelError: when the stream breaks after its first piece, for a 4xx answer, or when all are out.
        """
        self.check_allowed()
        key, waits = session_key(), 0
        while True:
            lease = self.router.acquire(key)
            if lease is None:
                waits = self._wait(waits)
                continue
            member = self.members[lease.index]
            pieces = member.stream(messages, params)
            try:
                first = next(pieces)
            except StopIteration as done:
                self.router.release(lease)
                return done.value
            except ServerUnavailableError as exc:
                self._failed(lease, exc)
                continue
            except BaseException:
                self.router.release(lease)
                raise
            return (yield from self._rest(lease, first, pieces))

    def _rest(self, lease: Lease, first: str, pieces: Generator[str, None, Completion]
              ) -> Generator[str, None, Completion]:
        """Yield the rest of a started stream; count the server's failure if it breaks (no failover now)."""
        error: str | None = None
        try:
            yield first
            return (yield from pieces)
        except ServerUnavailableError as exc:
            error = str(exc)
            raise
        finally:
            pieces.close()
            self.router.release(lease, error)

    # -- routing --------------------------------------------------------------------------------------------

    def _call(self, key: str | None, request: Callable[[OpenAIBackend], T]) -> T:
        """Run ``request`` on the server the router picks; on a server's failure, again on another."""
        waits = 0
        while True:
            lease = self.router.acquire(key)
            if lease is None:
                waits = self._wait(waits)
                continue
            try:
                result = request(self.members[lease.index])
            except ServerUnavailableError as exc:
                self._failed(lease, exc)
                continue
            except BaseException:
                self.router.release(lease)  # the request's fault (or a cancel): the server answered or is fine
                raise
            self.router.release(lease)
            return result

    def _failed(self, lease: Lease, exc: ModelError) -> None:
        """Count a server's failure; say so once per ejection (a failed probe or a straggler: debug only)."""
        url = self.router.urls[lease.index]
        if self.router.release(lease, str(exc)):
            left = sum(1 for server in self.router.counts() if server["healthy"])
            where = "its requests go to the other servers" if left else "no server is left: requests wait for one"
            logger.warning("model server %s is taken out (%s); %s", url, exc, where)
        else:
            logger.debug("model server %s failed again: %s", url, exc)

    def _wait(self, waits: int) -> int:
        """Sleep until a server may take a request; the count of backoff waits so far (raises past the retries)."""
        seconds, counts = self.router.wait_s()
        if counts and seconds > 0:
            if waits >= self.max_retries:
                raise ModelError(f"all {len(self.members)} servers of {self.model!r} are down after {waits} "
                                 f"retries: {self.router.down_message()}")
            waits += 1
        time.sleep(seconds)
        return waits

    def _probe(self, kwargs: dict[str, Any]) -> Any:
        """One feature probe, sent to a healthy member (the session-free pick); ``None`` when it fails."""
        lease = self.router.acquire(None)
        if lease is None:
            return None
        try:
            return self.members[lease.index].probe(kwargs)
        finally:
            self.router.release(lease)

    def probe_url(self) -> str:
        """The base URL of a healthy member (the first when all are out), for probes that need a URL."""
        for server in self.router.counts():
            if server["healthy"]:
                return str(server["url"])
        return self.members[0].base_url


class _PoolGrammar(ServerGrammar):
    """The grammar option of the pool's servers, asked once of a healthy member."""

    def __init__(self, pool: OpenAIPool, api_key: str) -> None:
        super().__init__(pool.members[0].base_url, api_key)
        self._pool = pool

    @property
    def option(self) -> Any:
        """The servers' grammar option (asked of a healthy member on the first read)."""
        if not self._detected:
            self.base_url = self._pool.probe_url()
        return super().option
