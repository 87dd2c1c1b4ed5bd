"""The ``memory_search`` tool of ``ponder mcp serve``: read-only search over ponder's Chroma memory store.

One store is opened per server process, with the embedder it was created with (ponder's own: MiniLM, or the
hashing test double; nothing is downloaded), by :meth:`MemorySearchTool.warm_up` in a background thread when the
server starts (loading MiniLM takes about ten seconds) or else by the first search. The query is embedded once
per search, for every kind. A store that does not exist yet is reported as
holding no memories, and is not created: searching never writes (hits are not counted as uses).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ponder.core.types import MemoryKind, choices

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.memory.schema import Hit
    from ponder.memory.store import ChromaMemoryStore

__all__ = ["MemorySearchArgs", "MemorySearchTool"]

logger = logging.getLogger(__name__)

_CHROMA_FILE = "chroma.sqlite3"  # what a Chroma PersistentClient directory holds once a store was created
_SNIPPET = 600  # characters of each memory shown


class MemorySearchArgs(BaseModel):
    """Arguments of ``memory_search``."""

    query: str = Field(min_length=1, max_length=2000,
                       description="What to look for, e.g. 'word problems that mix units'.")
    kind: MemoryKind | None = Field(None, description="Only this kind of memory: reflection (lessons from failed "
                                    "attempts), insight (general rules) or experience (past solved tasks); "
                                    "default: all kinds.")
    k: int = Field(5, ge=1, le=20, description="How many memories to return at most.")


class MemorySearchTool:
    """Search the memory store the settings point at (``memory_path`` or ``memory_url``).

    Args:
        settings: Where the store is and which namespace is searched (``memory_namespace``).
    """

    name = "memory_search"
    description = (
        "Searches ponder's long-term memory (Reflexion reflections, ExpeL insights and past experiences) and "
        "returns the memories most similar to the query, best first, as numbered lines "
        "'1. [kind, similarity 0.82] text'. Read-only."
    )
    args_schema: type[BaseModel] = MemorySearchArgs

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: ChromaMemoryStore | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def location(self) -> str:
        """The store's URL or directory, for messages."""
        return self.settings.memory_url or str(Path(self.settings.memory_path).expanduser())

    def _exists(self) -> bool:
        """Whether there is a store to open (a server always counts; a directory once Chroma wrote there)."""
        return bool(self.settings.memory_url) or (Path(self.location) / _CHROMA_FILE).is_file()

    def _open(self) -> ChromaMemoryStore | None:
        with self._lock:
            if self._store is None and not self._closed and self._exists():
                from ponder.memory.store import open_store

                self._store = open_store(self.settings)
            return self._store

    def warm_up(self) -> threading.Thread:
        """Open the store and load its embedder in a daemon thread (failures are left to the first search)."""

        def load() -> None:
            try:
                store = self._open()
                if store is not None:
                    store.embedder(["warm up"])
            except Exception as exc:  # reported by the first search that hits it
                logger.debug("memory_search warm-up failed: %s", exc)

        thread = threading.Thread(target=load, name="memory-warm-up", daemon=True)
        thread.start()
        return thread

    def run(self, args: BaseModel) -> str:
        """Search every kind (or ``args.kind``) and merge the hits, best first.

        Raises:
            MemoryStoreError: Chroma failed. ConfigError: the store's embedder is not installed.
        """
        assert isinstance(args, MemorySearchArgs)
        store = self._open()
        if store is None:
            return f"No memories: the memory store at {self.location} is empty (nothing has been stored yet)."
        kinds = [args.kind] if args.kind else choices(MemoryKind)
        vector = store.embedder([args.query])[0]
        hits = [h for kind in kinds for h in store.search(kind, args.query, args.k, embedding=vector, mark_used=False)]
        hits = sorted((h for h in hits if h.similarity > 0), key=lambda h: -h.similarity)[:args.k]  # > 0: related
        if not hits:
            where = f"namespace {store.namespace!r} of {self.location}"
            return f"No memories found for this query in {where}."
        return "\n".join(_line(n, hit) for n, hit in enumerate(hits, 1))

    def close(self) -> None:
        """Close the store (if it was opened); calling it twice is fine."""
        with self._lock:
            store, self._store, self._closed = self._store, None, True
        if store is not None:
            store.close()


def _line(n: int, hit: Hit) -> str:
    text = " ".join(hit.record.text.split())
    text = text if len(text) <= _SNIPPET else text[:_SNIPPET] + " ..."
    return f"{n}. [{hit.record.kind}, similarity {hit.similarity:.2f}] {text}"
