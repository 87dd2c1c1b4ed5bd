"""Pluggable web search: the :class:`WebSearchBackend` protocol, a DuckDuckGo client and a ``web_search`` tool.

The DuckDuckGo backend uses the optional ``ddgs`` package (or its predecessor ``duckduckgo_search``);
without either, building it raises :class:`MissingExtraError`. Before each search (at most every
five minutes once one succeeds) it opens a TCP connection to the search endpoint with a short
timeout, so that on a machine without network access it fails within seconds with one clear message
(``web search unavailable: no network (...)``) instead of hanging in the HTTP client's retries.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from ponder.core.errors import MissingExtraError, ToolError
from ponder.tools.base import ToolInputError
from ponder.tools.search.hits import Hit, format_hits
from ponder.tools.search.session import clean_input

__all__ = ["DuckDuckGoBackend", "WebSearchBackend", "WebSearchTool", "WebSearchUnavailableError", "check_network"]

DDG_ENDPOINT = "https://html.duckduckgo.com/html/"
CONNECT_TIMEOUT = 3.0  # seconds for the reachability probe
REQUEST_TIMEOUT = 10.0  # seconds for the search request itself
PROBE_TTL = 300.0  # a successful probe is trusted this long


class WebSearchUnavailableError(ToolError):
    """The web search service cannot be reached (no network, DNS failure, timeout, service error)."""


@runtime_checkable
class WebSearchBackend(Protocol):
    """A web search service."""

    def search(self, query: str, k: int) -> list[Hit]:
        """The top ``k`` results for ``query`` (``title``, ``text`` = summary, ``url``).

        Raises:
            WebSearchUnavailableError: when the service cannot be reached.
        """
        ...


def check_network(url: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Open (and close) a TCP connection to ``url``'s host and port within ``timeout`` seconds.

    Name resolution is included in the time limit (it runs in a helper thread, as ``getaddrinfo``
    has no timeout of its own).

    Raises:
        WebSearchUnavailableError: ``web search unavailable: no network (...)`` when it fails.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)

    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - the probe thread reports, never raises (it may outlive the call)
            outcome.append(exc)

    # a daemon thread: a hung name lookup must neither block this call nor the interpreter's exit
    probe = threading.Thread(target=connect, name="web-probe", daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    if outcome and outcome[0] is None:
        return
    if not outcome:
        reason = f"no answer from {host}:{port} within {timeout:g} s"
    else:
        exc = outcome[0]
        detail = (exc.strerror if isinstance(exc, OSError) else None) or exc
        reason = f"cannot connect to {host}:{port}: {detail}"
    raise WebSearchUnavailableError(f"web search unavailable: no network ({reason})")


def _ddgs_class() -> Any:
    try:
        from ddgs import DDGS
    except ImportError:
        try:
            from duckduckgo_search import DDGS
        except ImportError:
            raise MissingExtraError("ddgs", "web", "web search") from None
    return DDGS


class DuckDuckGoBackend:
    """DuckDuckGo text search through the ``ddgs`` package.

    Args:
        endpoint: The address probed before searching (tests point it at a closed local port).
        connect_timeout: Seconds allowed for the probe.
        timeout: Seconds allowed for the search request.

    Raises:
        MissingExtraError: when neither ``ddgs`` nor ``duckduckgo_search`` is installed.
    """

    def __init__(self, endpoint: str = DDG_ENDPOINT, connect_timeout: float = CONNECT_TIMEOUT,
                 timeout: float = REQUEST_TIMEOUT) -> None:
        self._ddgs = _ddgs_class()
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._reachable_until = 0.0

    def search(self, query: str, k: int) -> list[Hit]:
        """The top ``k`` DuckDuckGo results for ``query``.

        Raises:
            WebSearchUnavailableError: when the endpoint is unreachable or the search fails.
        """
        if time.monotonic() >= self._reachable_until:
            check_network(self.endpoint, self.connect_timeout)
            self._reachable_until = time.monotonic() + PROBE_TTL
        try:
            rows = self._ddgs(timeout=self.timeout).text(query, max_results=k) or []
        except Exception as exc:  # the library's own exception types differ between versions
            self._reachable_until = 0.0
            raise WebSearchUnavailableError(f"web search failed: {type(exc).__name__}: {exc}") from exc
        return [Hit(title=str(r.get("title", "")), text=str(r.get("body", "")), url=r.get("href"))
                for r in rows[:k]]


class WebSearchArgs(BaseModel):
    """Arguments of ``web_search``."""

    query: str = Field(description="What to search the web for")


class WebSearchTool:
    """``web_search[query]``: numbered web results ``1. Title — summary <url>``."""

    name = "web_search"
    description = ("Searches the web; returns numbered results '1. Title — summary <url>'. "
                   "Example input: population of Lyon 2020")
    args_schema: type[BaseModel] = WebSearchArgs

    def __init__(self, backend: WebSearchBackend | None = None, k: int = 5) -> None:
        self.backend = backend if backend is not None else DuckDuckGoBackend()
        self.k = k

    def run(self, args: BaseModel) -> str:
        """Search the web for ``args.query``; an unreachable service raises :class:`WebSearchUnavailableError`."""
        query = clean_input(args.query)  # type: ignore[attr-defined]
        if not query:
            raise ToolInputError("web_search needs a query.")
        hits = self.backend.search(query, self.k)
        return format_hits(hits) if hits else f"No results for [{query}]."
