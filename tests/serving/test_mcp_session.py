"""Per-client tool sessions of ``ponder mcp serve`` (in process; the sandbox is not started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.settings import Settings, load_settings
from ponder.serving.mcp_session import SessionRegistry, ToolSession
from ponder.tools.base import ToolInputError
from ponder.tools.calculator import calculator_tool
from ponder.tools.search.session import NO_PAGE


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    corpus = tmp_path / "corpus.jsonl"
    pages = [{"id": "1", "title": "Alpha", "text": "Alpha is first. Alpha has a red roof."},
             {"id": "2", "title": "Beta", "text": "Beta is second. Beta has a blue roof."}]
    corpus.write_text("".join(json.dumps(p) + "\n" for p in pages), encoding="utf-8")
    return load_settings(search_corpus=corpus, cache_dir=tmp_path / "cache")


NAMES = ["calculator", "search", "lookup", "retrieve"]


def test_each_session_has_its_own_search_state_and_shares_stateless_tools(settings: Settings) -> None:
    shared = {"calculator": calculator_tool()}
    one, two = ToolSession(NAMES, settings, shared), ToolSession(NAMES, settings, shared)
    assert list(one.tools) == NAMES and one.tools["calculator"] is two.tools["calculator"]
    assert one.tools["search"] is not two.tools["search"]
    assert one.call("search", {"entity": "Alpha"}).startswith("Alpha is first.")
    assert one.call("lookup", {"keyword": "roof"}) == "(Result 1 / 1) Alpha has a red roof."
    assert two.call("lookup", {"keyword": "roof"}) == NO_PAGE  # the other client's search is not this one's
    assert one.call("calculator", {"expression": "6*7"}) == "42"


def test_bad_calls_raise_tool_input_errors(settings: Settings) -> None:
    session = ToolSession(NAMES, settings, {"calculator": calculator_tool()})
    with pytest.raises(ToolInputError, match="unknown tool 'python'"):
        session.call("python", {"code": "1"})
    with pytest.raises(ToolInputError, match=r"invalid arguments for search: entity: Field required"):
        session.call("search", {"query": "Alpha"})
    with pytest.raises(ToolInputError, match="invalid arguments for calculator: expression: Input should be"):
        session.call("calculator", {"expression": ["1"]})
    with pytest.raises(ToolInputError, match="needs a keyword"):
        session.call("lookup", {"keyword": " "})


def test_the_registry_closes_every_open_session(settings: Settings) -> None:
    registry = SessionRegistry()
    sessions = [registry.open(["python", "search"], settings, {}) for _ in range(3)]
    registry.close(sessions[0])
    assert len(registry) == 2 and sessions[0].closed
    assert registry.close_all() == 2 and len(registry) == 0
    assert all(s.closed for s in sessions)
