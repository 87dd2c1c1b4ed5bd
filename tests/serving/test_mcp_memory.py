"""``memory_search`` of ``ponder mcp serve`` over a real Chroma store (hashing embedder), in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.core.settings import load_settings
from ponder.memory.embeddings import HashingEmbeddingFunction
from ponder.memory.schema import Insight, Reflection
from ponder.serving.mcp_memory import MemorySearchTool
from ponder.serving.mcp_session import client_arguments
from ponder.tools.base import ToolInputError


def search(tool: MemorySearchTool, **arguments: object) -> str:
    return tool.run(client_arguments(tool, arguments))


def test_a_missing_store_is_reported_empty_and_not_created(tmp_path: Path) -> None:
    tool = MemorySearchTool(load_settings(memory_path=tmp_path / "none"))
    assert "is empty" in search(tool, query="anything")
    assert not (tmp_path / "none").exists()


def test_hits_best_first_with_kind_filter_and_bounds(tmp_path: Path) -> None:
    from ponder.memory.store import open_store

    settings = load_settings(memory_path=tmp_path / "memory")
    with open_store(settings, embedding_function=HashingEmbeddingFunction()) as store:
        store.add(Insight(text="convert units before adding lengths"))
        store.add(Reflection(text="I forgot to convert minutes to hours"))
    tool = MemorySearchTool(settings)
    try:
        tool.warm_up().join(30)
        lines = search(tool, query="convert units before adding lengths", k=2).splitlines()
        assert lines[0] == "1. [insight, similarity 1.00] convert units before adding lengths"
        assert lines[1].startswith("2. [reflection, similarity ")
        assert search(tool, query="convert units", kind="reflection").startswith("1. [reflection")
        assert "No memories found" in search(tool, query="zebra giraffe")
        with pytest.raises(ToolInputError, match="kind: Input should be 'reflection', 'insight' or 'experience'"):
            search(tool, query="x", kind="secrets")
        with pytest.raises(ToolInputError, match="query: String should have at least 1 character"):
            search(tool, query="")
    finally:
        tool.close()
