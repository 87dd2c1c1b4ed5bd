from __future__ import annotations

import socket
import sys
import threading
import types

import pytest

from ponder.core.errors import MissingExtraError
from ponder.tools.base import ToolBox
from ponder.tools.search.hits import Hit, format_hits, snippet
from ponder.tools.search.web import (
    DuckDuckGoBackend,
    WebSearchBackend,
    WebSearchTool,
    WebSearchUnavailableError,
    check_network,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fake_ddgs(monkeypatch):
    """A stand-in ``ddgs`` package whose client must never be reached when the network is down."""
    calls = []

    class DDGS:
        def __init__(self, timeout=None):
            self.timeout = timeout

        def text(self, query, max_results=10):
            calls.append(query)
            return [{"title": f"Result {i}", "body": f"About {query} {i}", "href": f"https://example.org/{i}"}
                    for i in range(max_results + 2)]

    monkeypatch.setitem(sys.modules, "ddgs", types.SimpleNamespace(DDGS=DDGS))
    return calls


def test_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ddgs", None)
    monkeypatch.setitem(sys.modules, "duckduckgo_search", None)
    with pytest.raises(MissingExtraError, match=r"web search needs the 'ddgs' package") as info:
        DuckDuckGoBackend()
    assert info.value.extra == "web"
    with pytest.raises(MissingExtraError):
        WebSearchTool()


def test_closed_port_fails_fast(fake_ddgs):
    backend = DuckDuckGoBackend(endpoint=f"http://127.0.0.1:{_closed_port()}/html/", connect_timeout=3)
    assert isinstance(backend, WebSearchBackend)
    with pytest.raises(WebSearchUnavailableError, match=r"^web search unavailable: no network \(cannot connect"):
        backend.search("anything", 3)  # refused at once: "cannot connect", not "no answer within 3 s"
    assert fake_ddgs == []  # the HTTP client was never called


def test_unavailable_web_search_is_our_error_not_the_models(fake_ddgs):
    box = ToolBox([WebSearchTool(DuckDuckGoBackend(endpoint=f"http://127.0.0.1:{_closed_port()}/"), k=3)])
    with pytest.raises(WebSearchUnavailableError, match="no network"):
        box.call("web_search", "lyon population")


def test_check_network_reaches_a_listening_local_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_network(f"http://127.0.0.1:{server.getsockname()[1]}/", timeout=1)


def test_backend_results_when_reachable(fake_ddgs):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        backend = DuckDuckGoBackend(endpoint=f"http://127.0.0.1:{server.getsockname()[1]}/")
        hits = backend.search("lyon", 2)
    assert [h.title for h in hits] == ["Result 0", "Result 1"] and hits[0].url == "https://example.org/0"
    assert fake_ddgs == ["lyon"]


def test_web_search_tool_format():
    class Fixed:
        def search(self, query, k):
            return [Hit(title="Lyon", text="Lyon is a city in France. " * 20, url="https://en.wikipedia.org/wiki/Lyon")]

    box = ToolBox([WebSearchTool(Fixed())])
    obs = box.call("web_search", "Lyon").observation
    assert obs.startswith("1. Lyon — Lyon is a city in France.") and obs.endswith("… <https://en.wikipedia.org/wiki/Lyon>")

    class Empty:
        def search(self, query, k):
            return []

    assert ToolBox([WebSearchTool(Empty())]).call("web_search", "x").observation == "No results for [x]."


def test_snippet_and_format_hits():
    assert snippet("short  text\n here") == "short text here"
    long = snippet("word " * 100, limit=50)
    assert long.endswith("…") and len(long) <= 51 and not long[:-1].endswith(" ")
    assert format_hits([Hit("A", "alpha"), Hit("B", "beta")]) == "1. A — alpha\n2. B — beta"


def test_hung_connection_times_out(monkeypatch):
    import ponder.tools.search.web as web

    release, connected = threading.Event(), threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        connected.set()

    monkeypatch.setattr(web.socket, "create_connection", hang)
    try:
        with pytest.raises(WebSearchUnavailableError, match=r"no network \(no answer from 127.0.0.1:9 within 0.2 s\)"):
            check_network("http://127.0.0.1:9/", timeout=0.2)
        assert not connected.is_set()  # it gave up while the connection attempt was still hanging
    finally:
        release.set()
