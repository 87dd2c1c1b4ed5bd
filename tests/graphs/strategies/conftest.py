"""Fixtures of the strategy tests: settings in a tmp dir and a real Chroma store embedding with the hashing double."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ponder.core.settings import Settings, load_settings
from ponder.memory.embeddings import HashingEmbeddingFunction
from ponder.memory.store import ChromaMemoryStore, open_store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings writing under ``tmp_path`` with a private memory directory."""
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", tools=["calculator"])


@pytest.fixture
def store(settings: Settings) -> Iterator[ChromaMemoryStore]:
    """A fresh persistent store embedding with the hashing double."""
    with open_store(settings, embedding_function=HashingEmbeddingFunction()) as opened:
        yield opened
