"""Memory (Reflexion reflections, ExpeL insights and experiences) in Chroma.

The records and the :class:`~ponder.memory.schema.MemoryStore` protocol are in :mod:`ponder.memory.schema`
(cheap to import); the Chroma store is in :mod:`ponder.memory.store` and is imported on first use,
since ``import chromadb`` takes over a second::

    from ponder.memory import open_store
    store = open_store(settings)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ponder.memory.schema import (
    RECORD_TYPES,
    SCHEMA_VERSION,
    Experience,
    Hit,
    Insight,
    MemoryRecord,
    MemoryStore,
    Reflection,
    WriteResult,
)

if TYPE_CHECKING:
    from ponder.memory.store import ChromaMemoryStore, MemoryStoreError, open_store

__all__ = [
    "RECORD_TYPES",
    "SCHEMA_VERSION",
    "ChromaMemoryStore",
    "Experience",
    "Hit",
    "Insight",
    "MemoryRecord",
    "MemoryStore",
    "MemoryStoreError",
    "Reflection",
    "WriteResult",
    "open_store",
]

_LAZY = {"ChromaMemoryStore", "MemoryStoreError", "open_store"}


def __getattr__(name: str) -> Any:
    """Import the Chroma store only when one of its names is used."""
    if name in _LAZY:
        from ponder.memory import store

        return getattr(store, name)
    raise AttributeError(f"module 'ponder.memory' has no attribute {name!r}")
