"""ponder's MCP server in process, through the SDK's in-memory transport (fast: no process, no sandbox)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.serving.mcp_server import PonderMCP, build_mcp_server, parse_tool_names


@pytest.fixture
def mcp(tmp_path: Path) -> Iterator[PonderMCP]:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "1", "title": "Alpha", "text": "Alpha is first. It has a red roof."}) + "\n",
                      encoding="utf-8")
    settings = load_settings(search_corpus=corpus, cache_dir=tmp_path / "cache", memory_path=tmp_path / "memory")
    server = build_mcp_server(settings, ["calculator", "search", "lookup", "memory_search"])
    yield server
    server.close()


def test_connections_list_typed_tools_keep_their_own_state_and_get_tool_errors(mcp: PonderMCP) -> None:
    async def body() -> None:
        with anyio.fail_after(30):
            async with Client(mcp.server, mode="legacy") as one, Client(mcp.server, mode="legacy") as two:
                tools = (await one.list_tools()).tools
                assert [t.name for t in tools] == ["calculator", "search", "lookup", "memory_search"]
                assert tools[1].input_schema == {"type": "object", "required": ["entity"], "properties": {"entity": {
                    "type": "string", "title": "Entity",
                    "description": "The title of a page to open, e.g. Colorado orogeny"}}}
                assert tools[0].annotations.read_only_hint and tools[0].annotations.idempotent_hint
                await one.call_tool("search", {"entity": "Alpha"})
                assert (await one.call_tool("lookup", {"keyword": "roof"})).content[0].text.startswith("(Result 1")
                assert (await two.call_tool("lookup", {"keyword": "roof"})).content[0].text.startswith("No page")
                assert len(mcp.sessions) == 2
                bad = await one.call_tool("calculator", {"expression": "2 +"})
                assert bad.is_error and bad.content[0].text.startswith("Error: could not parse")
                empty = await two.call_tool("memory_search", {"query": "x"})
                assert not empty.is_error and "is empty" in empty.content[0].text
            assert len(mcp.sessions) == 0  # closed with their connections

    anyio.run(body)


def test_tool_names_are_checked() -> None:
    assert parse_tool_names("python, calculator,python") == ["python", "calculator"]
    with pytest.raises(ConfigError, match=r"unknown tool\(s\) shell; available: calculator, python"):
        parse_tool_names("calculator,shell")


def test_mcp_servers_in_the_settings_are_not_opened_by_the_server(tmp_path: Path) -> None:
    """``mcp_servers`` (e.g. from ponder.toml) are for agents: serving ponder's tools never connects to them."""
    settings = load_settings(cache_dir=tmp_path / "cache", mcp_servers=["missing"],
                             mcp={"servers": {"missing": {"command": str(tmp_path / "no-such-server")}}})
    server = build_mcp_server(settings, ["calculator", "python"])

    async def body() -> None:
        with anyio.fail_after(30):
            async with Client(server.server, mode="legacy") as client:
                assert [t.name for t in (await client.list_tools()).tools] == ["calculator", "python"]
                assert (await client.call_tool("calculator", {"expression": "2 + 3"})).content[0].text == "5"

    try:
        anyio.run(body)
    finally:
        server.close()
