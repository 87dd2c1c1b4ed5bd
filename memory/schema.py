"""Typed memory records and the store protocol (Reflexion reflections, ExpeL insights and experiences)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from ponder.core.types import MemoryKind

#: Bumped when the stored layout changes; a store with another version refuses to open.
SCHEMA_VERSION = 1

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class MemoryRecord(BaseModel):
    """Fields shared by every memory.

    Attributes:
        text: What is embedded and shown to the model (the lesson, the insight, the compact trajectory).
        namespace: Keeps experiments apart (e.g. a project or an environment name).
        task_family: Environment or dataset, e.g. ``gsm8k`` or ``alfworld``.
        task: The task text the memory came from (used for similarity with new tasks).
        outcome: ``success`` / ``failure`` / ``unknown`` of the episode the memory came from.
        score: Usefulness: insight votes, or a reward; eviction drops the lowest first.
    """

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: MemoryKind
    text: str
    namespace: str = "default"
    task_family: str = ""
    task: str = ""
    outcome: Literal["success", "failure", "unknown"] = "unknown"
    run_id: str = ""
    created: str = Field(default_factory=_now)
    last_used: str = ""
    use_count: int = 0
    score: float = 0.0
    metadata: dict[str, Any] = Field(default_factory=dict)


class Reflection(MemoryRecord):
    """A Reflexion lesson written after a failed trial."""

    kind: Literal["reflection"] = "reflection"
    outcome: Literal["success", "failure", "unknown"] = "failure"


class Insight(MemoryRecord):
    """An ExpeL insight; ``score`` holds its votes (starts at 2 as in ExpeL, dropped at 0)."""

    kind: Literal["insight"] = "insight"
    score: float = 2.0


class Experience(MemoryRecord):
    """A compact successful trajectory, retrieved as a few-shot example for similar tasks."""

    kind: Literal["experience"] = "experience"
    outcome: Literal["success", "failure", "unknown"] = "success"


RECORD_TYPES: dict[str, type[MemoryRecord]] = {"reflection": Reflection, "insight": Insight, "experience": Experience}


def parse_record(obj: Any) -> MemoryRecord:
    """One decoded JSON object as the record type its ``kind`` names (a line of an export file).

    Raises:
        ValueError: naming what is wrong (pydantic's ``ValidationError`` for a bad field).
    """
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object (a memory record), got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind not in RECORD_TYPES:
        raise ValueError(f"bad row: kind: expected one of {', '.join(RECORD_TYPES)} (got {kind!r})")
    return RECORD_TYPES[kind].model_validate(obj)


class WriteResult(BaseModel):
    """What happened to one write: never silent (``skipped``: an import's unreadable line, named in ``reason``)."""

    id: str
    status: Literal["added", "duplicate", "rejected", "updated", "skipped"]
    reason: str = ""
    duplicate_of: str | None = None
    evicted: list[str] = Field(default_factory=list)


class Hit(BaseModel):
    """A retrieved memory and its cosine similarity to the query (1 = identical)."""

    record: MemoryRecord
    similarity: float


class MemoryStore(Protocol):
    """What the memory loops need from a store (Chroma in production)."""

    def add(self, record: MemoryRecord) -> WriteResult:
        """Validate and write one record (rejects empty / oversized / near-duplicates, evicts at capacity)."""
        ...

    def search(self, kind: MemoryKind, query: str, k: int = 3, *, namespace: str | None = None,
               where: dict[str, Any] | None = None) -> list[Hit]:
        """The ``k`` most similar records of ``kind`` (marks them used)."""
        ...

    def get(self, record_id: str) -> MemoryRecord | None:
        """One record by id."""
        ...

    def update(self, record: MemoryRecord) -> WriteResult:
        """Replace a record's text / score / metadata (same id)."""
        ...

    def delete(self, record_id: str) -> bool:
        """Delete one record; ``False`` when it did not exist."""
        ...

    def list(self, kind: MemoryKind | None = None, *, namespace: str | None = None,
             limit: int = 100) -> list[MemoryRecord]:
        """Records, newest first."""
        ...

    def clear(self, namespace: str | None = None) -> int:
        """Delete everything (in one namespace); returns how many records went."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counts per kind and namespace, path / url, schema version."""
        ...

    def export(self, path: Path) -> int:
        """Write every record as JSONL; returns the count."""
        ...

    def import_(self, path: Path) -> list[WriteResult]:
        """Read JSONL written by :meth:`export`; round-trips exactly (ids, timestamps, scores)."""
        ...

    def close(self) -> None:
        """Release the client (a no-op for an in-process store that holds nothing open)."""
        ...
