"""The memory store's write rules: validation, near-duplicate rejection and eviction at capacity.

A write rejects empty or oversized text (over ``memory_max_chars``), ids already stored (unless the write
replaces them, as an import does) and ids repeated within the write; it skips records whose cosine
similarity to a stored record or an earlier one of the same write (same kind and namespace) reaches
``memory_duplicate_threshold``; and at ``memory_capacity`` it evicts the least useful records of the
namespace (lowest score, fewest uses, least recently used) to make room. Every record gets a
:class:`~ponder.memory.schema.WriteResult`; nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ponder.memory.chroma import to_chroma
from ponder.memory.schema import MemoryRecord, WriteResult

if TYPE_CHECKING:
    from ponder.core.settings import Settings

__all__ = ["CHUNK", "WriteRules"]

logger = logging.getLogger("ponder.memory")

CHUNK = 1000  # records per write batch (bounds the in-batch similarity matrix)


def _usefulness(meta: dict[str, Any]) -> tuple[float, int, str, str]:
    """Sort key: the least useful first (lowest score, fewest uses, least recently used / oldest)."""
    return (float(meta.get("score", 0.0)), int(meta.get("use_count", 0)),
            str(meta.get("last_used") or meta.get("created", "")), str(meta.get("created", "")))


class WriteRules:
    """The write path of :class:`~ponder.memory.store.ChromaMemoryStore` (a mixin).

    It relies on the store's settings, batch size and Chroma helpers (``_col``, ``_call``, ``_embed``,
    ``_nearest``, ``_rows``, ``_locate``) and must run under the store's lock (see
    :func:`~ponder.memory.chroma.locked`); writes go in chunks of at most ``CHUNK`` records.
    """

    if TYPE_CHECKING:
        settings: Settings
        _max_batch: int
        _col: Callable[[str], Any]
        _call: Callable[..., Any]
        _embed: Callable[[Sequence[str]], list[Any]]
        _nearest: Callable[..., list[list[tuple[str, float, str | None, dict[str, Any]]]]]
        _rows: Callable[..., list[tuple[str, str | None, dict[str, Any]]]]
        _locate: Callable[[list[str]], dict[str, str]]

    def _problem(self, record: MemoryRecord) -> str:
        if not record.text.strip():
            return "empty text"
        size, limit = len(record.text), self.settings.memory_max_chars
        return f"text has {size} characters, over memory_max_chars={limit}" if size > limit else ""

    def _skip(self, record: MemoryRecord, status: str, reason: str, duplicate_of: str | None = None) -> WriteResult:
        logger.info("memory %s %s %s: %s", record.kind, record.id, status, reason)
        return WriteResult(id=record.id, status=status, reason=reason, duplicate_of=duplicate_of)  # type: ignore[arg-type]

    def _write(self, records: list[MemoryRecord], vectors: Sequence[Any] | None,
               replace: bool = False) -> list[WriteResult]:
        results: list[WriteResult | None] = [None] * len(records)
        existing = self._locate([r.id for r in records if not self._problem(r)])
        seen: set[str] = set()
        keep: list[int] = []
        for i, record in enumerate(records):
            problem = self._problem(record)
            if not problem and record.id in seen:
                problem = "the same id appears twice in one write"
            elif not problem and record.id in existing and (not replace or existing[record.id] != record.kind):
                problem = f"id already exists (as a {existing[record.id]}); use update()"
            if problem:
                results[i] = self._skip(record, "rejected", problem)
            else:
                seen.add(record.id)
                keep.append(i)
        embedded = self._embed([records[i].text for i in keep]) if vectors is None else [vectors[i] for i in keep]
        groups: dict[tuple[str, str], list[tuple[int, Any]]] = {}
        for i, vec in zip(keep, embedded, strict=True):
            groups.setdefault((records[i].kind, records[i].namespace), []).append((i, vec))
        for (kind, namespace), items in groups.items():
            out = self._write_group(kind, namespace, [(records[i], v) for i, v in items], existing)
            for i, _ in items:
                results[i] = out[records[i].id]
        return [r for r in results if r is not None]

    def _write_group(self, kind: str, namespace: str, items: list[tuple[MemoryRecord, Any]],
                     existing: dict[str, str]) -> dict[str, WriteResult]:
        import numpy as np

        col, threshold = self._col(kind), self.settings.memory_duplicate_threshold
        # 2 neighbours: a replaced record finds itself; settled when even the farthest candidate is not a duplicate
        near = self._nearest(col, [v for _, v in items], namespace, 2, texts=[r.text for r, _ in items],
                             conclusive=lambda rows: 1.0 - rows[-1][1] < threshold)
        mat = np.stack([np.asarray(v, dtype=np.float32) for _, v in items])
        mat /= np.linalg.norm(mat, axis=1, keepdims=True) + 1e-12
        within = mat @ mat.T  # similarities inside this write (chunks keep it small)
        taken: list[int] = []
        out: dict[str, WriteResult] = {}
        for n, ((record, _), rows) in enumerate(zip(items, near, strict=True)):
            best = [(1.0 - d, other) for other, d, _, _ in rows if other != record.id]
            if taken:
                j = taken[int(np.argmax(within[n, taken]))]
                best.append((float(within[n, j]), items[j][0].id))
            sim, other = max(best, default=(-1.0, ""))
            if sim >= threshold:
                out[record.id] = self._skip(record, "duplicate", f"cosine {sim:.3f} >= {threshold} with {other}", other)
            else:
                taken.append(n)
        accepted = [items[n] for n in taken]
        fresh = [r for r, _ in accepted if r.id not in existing]
        victims, overflow = self._make_room(kind, namespace, len(fresh), {r.id for r, _ in accepted})
        written = fresh[:len(fresh) - overflow]
        for record in fresh[len(written):]:
            out[record.id] = self._skip(record, "rejected", f"capacity {self.settings.memory_capacity} reached "
                                        "within one write")
        blocked = {r.id for r in fresh[len(written):]}
        for method, pairs in ((col.add, [(r, v) for r, v in accepted if r.id not in existing and r.id not in blocked]),
                              (col.upsert, [(r, v) for r, v in accepted if r.id in existing])):  # add: faster
            for start in range(0, len(pairs), self._max_batch):
                chunk = pairs[start:start + self._max_batch]
                self._call(f"write {kind}", method, ids=[r.id for r, _ in chunk], documents=[r.text for r, _ in chunk],
                           embeddings=[v for _, v in chunk], metadatas=[to_chroma(r) for r, _ in chunk], mutates=True)
        # the last len(victims) written records each evicted one; the first takes any surplus (capacity lowered)
        counts = [int(j >= len(written) - len(victims)) for j in range(len(written))]
        if written:
            counts[0] += max(0, len(victims) - len(written))
        pos = 0
        for record, count in zip(written, counts, strict=True):
            out[record.id] = WriteResult(id=record.id, status="added", evicted=victims[pos:pos + count])
            pos += count
        out.update({r.id: WriteResult(id=r.id, status="updated") for r, _ in accepted if r.id in existing})
        return out

    def _make_room(self, kind: str, namespace: str, incoming: int, keep: set[str]) -> tuple[list[str], int]:
        """Evict the least useful records so ``incoming`` new ones fit: ``(evicted ids, how many cannot)``."""
        col, capacity = self._col(kind), self.settings.memory_capacity
        if incoming == 0 or self._call("count", col.count) + incoming <= capacity:
            return [], 0
        rows = self._rows(kind, where={"namespace": namespace}, include=("metadatas",))
        excess = len(rows) + incoming - capacity
        candidates = sorted((r for r in rows if r[0] not in keep), key=lambda r: (_usefulness(r[2]), r[0]))
        victims = [r[0] for r in candidates[:max(excess, 0)]]
        if victims:
            self._call("evict", col.delete, ids=victims, mutates=True)
            logger.info("memory %s/%s at capacity %d: evicted %s", kind, namespace, capacity, ", ".join(victims))
        return victims, max(excess, 0) - len(victims)
