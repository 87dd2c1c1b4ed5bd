"""The Chroma memory store: one collection per kind, namespaces in metadata, never-silent writes.

Layout (``SCHEMA_VERSION`` 1): cosine collections ``ponder-reflection``, ``ponder-insight`` and
``ponder-experience``, plus ``ponder-meta`` whose metadata records the schema version and the embedder.
A record is stored as its ``text`` (the document), its id and flat metadata: the scalar fields as they
are, ``kind``, and ``metadata`` as JSON. Writes reject empty / oversized text and near-duplicates (same
kind and namespace) and evict the least useful records at capacity; each outcome is a ``WriteResult``.
Chroma failures raise :class:`MemoryStoreError`; SQLite lock contention is retried (bounded).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from ponder.config import Settings, load_settings
from ponder.errors import ConfigError, PonderError
from ponder.memory.embeddings import MiniLMEmbeddingFunction, build_embedding_function
from ponder.memory.schema import RECORD_TYPES, SCHEMA_VERSION, Hit, Kind, MemoryRecord, WriteResult
from ponder.records import append_jsonl, read_jsonl

__all__ = ["KINDS", "LOCK_FILE", "META_COLLECTION", "ChromaMemoryStore", "MemoryStoreError", "open_store"]

logger = logging.getLogger("ponder.memory")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

KINDS: tuple[Kind, ...] = ("reflection", "insight", "experience")
META_COLLECTION = "ponder-meta"
LOCK_FILE = "ponder-memory.lock"
_SCALARS = ("namespace", "task_family", "task", "outcome", "run_id", "created", "last_used", "use_count", "score")
_LOCKED = ("database is locked", "database table is locked", "database is busy")
_RETRIES = 30
_CHUNK = 1000  # records per write batch (bounds the in-batch similarity matrix)
_OVERSAMPLE = 8  # unfiltered candidates per wanted neighbour before a namespace-filtered query


class MemoryStoreError(PonderError):
    """The memory store (Chroma, its disk or its server) failed on our side."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _to_chroma(record: MemoryRecord) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    meta = {key: data[key] for key in _SCALARS}
    meta.update(kind=record.kind, metadata=json.dumps(data["metadata"], ensure_ascii=False))
    return meta


def _from_chroma(record_id: str, document: str | None, meta: dict[str, Any]) -> MemoryRecord:
    data = {key: meta[key] for key in _SCALARS if key in meta}
    data.update(id=record_id, text=document or "", kind=meta["kind"], metadata=json.loads(meta.get("metadata", "{}")))
    return RECORD_TYPES[meta["kind"]].model_validate(data)


def _usefulness(meta: dict[str, Any]) -> tuple[float, int, str, str]:
    """Sort key: the least useful first (lowest score, fewest uses, least recently used / oldest)."""
    return (float(meta.get("score", 0.0)), int(meta.get("use_count", 0)),
            str(meta.get("last_used") or meta.get("created", "")), str(meta.get("created", "")))


class _LocalClient:
    """One ``PersistentClient`` per directory and process, behind a lock shared with other processes.

    Chroma keeps each HNSW index in the memory of the process that opened it and never sees another
    process's writes (its queries then fail with "Error finding id" or miss records, and an index it
    persists loses vectors). So each store operation holds an exclusive ``flock`` on ``LOCK_FILE``; an
    operation that wrote leaves a fresh token there, and a process finding another process's token
    reopens its client, which reloads the index from disk and the write log, before going on.
    """

    _open: ClassVar[dict[str, _LocalClient]] = {}
    _registry = threading.Lock()

    def __init__(self, path: Path, key: str) -> None:
        from chromadb.config import Settings as ChromaSettings

        self.path, self.key, self.users, self.epoch, self.client = path, key, 0, 0, None
        self._chroma_settings = ChromaSettings(anonymized_telemetry=False)  # built once: pydantic-settings is slow
        self._seen, self._depth, self._dirty = "", 0, False
        self._mutex = threading.RLock()
        self._fh = open(path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - closed in release()

    @classmethod
    def acquire(cls, path: Path) -> _LocalClient:
        key = str(path.resolve())
        with cls._registry:
            local = cls._open.get(key) or cls._open.setdefault(key, cls(path, key))
            local.users += 1
            return local

    def release(self) -> None:
        with self._registry:
            self.users -= 1
            if self.users <= 0:
                self._open.pop(self.key, None)
                if self.client is not None:
                    self.client.close()
                self._fh.close()

    def mutated(self) -> None:
        self._dirty = True

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Hold the cross-process lock, reopening first when another process wrote since we last looked."""
        with self._mutex:
            outer = self._depth == 0
            self._depth += 1
            try:
                if outer:
                    fcntl.flock(self._fh, fcntl.LOCK_EX)
                    self._fh.seek(0)
                    token = self._fh.read().strip()
                    if self.client is None or (token != self._seen and not token.startswith(f"{os.getpid()}:")):
                        self._reconnect()
                    self._seen, self._dirty = token, False
                yield
            finally:
                self._depth -= 1
                if outer:
                    if self._dirty:  # written (even partly): other processes must reload
                        self._seen = f"{os.getpid()}:{uuid.uuid4().hex}"
                        self._fh.seek(0)
                        self._fh.truncate()
                        self._fh.write(self._seen)
                        self._fh.flush()
                    fcntl.flock(self._fh, fcntl.LOCK_UN)

    def _reconnect(self) -> None:
        import chromadb

        old, self.client = self.client, None
        try:
            if old is not None:
                old.close()
            self.client = chromadb.PersistentClient(path=str(self.path), settings=self._chroma_settings)
        except Exception as exc:
            raise MemoryStoreError(f"cannot open the memory store at {self.path}: {exc}") from exc
        self.epoch += 1


def _locked(method: F) -> F:
    """Run a store method under its directory's cross-process lock (no-op for a server)."""

    @functools.wraps(method)
    def wrapper(self: ChromaMemoryStore, *args: Any, **kwargs: Any) -> Any:
        if self._local is None:
            return method(self, *args, **kwargs)
        if self._closed:  # used after close(): take the directory's client again
            self._local, self._closed, self._epoch = _LocalClient.acquire(self._local.path), False, -1
        with self._local.guard():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class ChromaMemoryStore:
    """A :class:`~ponder.memory.schema.MemoryStore` over Chroma (a directory or a server); see :func:`open_store`.

    Args:
        client: A ``chromadb`` client (server), or the shared client of a directory.
        settings: Capacity, duplicate threshold, size limit and default namespace.
        location: The path or URL, for messages and :meth:`stats`.
        embedding_function: The embedder; by default the one the store was created with (MiniLM for a
            new store). Another one than the store's is refused: vectors of two models do not mix.

    Raises:
        ConfigError: the store has another schema version or embedder.
        MemoryStoreError: Chroma failed.
    """

    def __init__(self, client: Any, settings: Settings, *, location: str, embedding_function: Any = None) -> None:
        self._local = client if isinstance(client, _LocalClient) else None
        self._client, self.settings, self.location = client, settings, location
        self.namespace = settings.memory_namespace
        self._epoch, self._collections, self._closed = -1, {}, False
        with self._local.guard() if self._local else contextlib.nullcontext():
            self.embedder = self._open_meta(embedding_function)
            self._max_batch = int(self._call("get_max_batch_size", self.client.get_max_batch_size))
            self._col("insight")

    @property
    def client(self) -> Any:
        """The ``chromadb`` client in use (a directory's is replaced when another process wrote)."""
        return self._local.client if self._local else self._client

    def _call(self, what: str, fn: Callable[..., T], *args: Any, mutates: bool = False,
              transient: Sequence[str] = _LOCKED, **kwargs: Any) -> T:
        """Run a Chroma call, retrying lock contention, turning failures into :class:`MemoryStoreError`."""
        if mutates and self._local:
            self._local.mutated()
        delay = 0.02
        for attempt in range(_RETRIES):
            try:
                return fn(*args, **kwargs)
            except PonderError:
                raise
            except Exception as exc:
                if attempt < _RETRIES - 1 and any(s in str(exc).lower() for s in transient):
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                    continue
                raise MemoryStoreError(f"memory store {self.location}: {what} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_meta(self, embedding_function: Any) -> Any:
        chosen = embedding_function if embedding_function is not None else MiniLMEmbeddingFunction()
        stamp = {"schema_version": SCHEMA_VERSION, "embedder": chosen.name(),
                 "embedder_config": json.dumps(chosen.get_config()), "created": _now()}
        meta = self._call("open", self.client.get_or_create_collection, META_COLLECTION, metadata=stamp,
                          embedding_function=None, transient=(*_LOCKED, "unique", "already exists"))
        found = dict(meta.metadata or {})
        if found.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"memory store at {self.location} has schema version {found.get('schema_version')}; "
                              f"this ponder reads {SCHEMA_VERSION}; export with the version that wrote it or point "
                              "memory_path elsewhere")
        name = found.get("embedder")
        if name == chosen.name():
            return chosen
        if embedding_function is not None:
            raise ConfigError(f"memory store at {self.location} holds {name!r} embeddings; refusing to mix in "
                              f"{chosen.name()!r} ones (point memory_path elsewhere)")
        return build_embedding_function(str(name), json.loads(found.get("embedder_config") or "{}"))

    def _col(self, kind: str) -> Any:
        """The collection of ``kind`` (handles are refetched after the client was reopened)."""
        if kind not in KINDS:
            raise ConfigError(f"unknown memory kind {kind!r}; choose one of: {', '.join(KINDS)}")
        epoch = self._local.epoch if self._local else 0
        if epoch != self._epoch:
            self._collections = {k: self._call(f"open ponder-{k}", self.client.get_or_create_collection, f"ponder-{k}",
                                               embedding_function=self.embedder, metadata={"kind": k},
                                               configuration={"hnsw": {"space": "cosine"}},
                                               transient=(*_LOCKED, "unique", "already exists")) for k in KINDS}
            self._epoch = epoch
        return self._collections[kind]

    def _embed(self, texts: Sequence[str]) -> list[Any]:
        import numpy as np

        try:
            vectors = self.embedder(list(texts)) if texts else []
        except PonderError:
            raise
        except Exception as exc:
            raise MemoryStoreError(f"embedding {len(texts)} text(s) with {self.embedder.name()} failed: {exc}") from exc
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    def _rows(self, kind: str, *, where: dict[str, Any] | None = None, ids: list[str] | None = None,
              include: Sequence[str] = ("documents", "metadatas")) -> list[tuple[str, str | None, dict[str, Any]]]:
        """``(id, document, metadata)`` of the matching records of ``kind``."""
        got = self._call(f"read {kind}", self._col(kind).get, ids=ids, where=where, include=list(include))
        docs = got.get("documents") or [None] * len(got["ids"])
        metas = got.get("metadatas") or [{}] * len(got["ids"])
        return list(zip(got["ids"], docs, metas, strict=True))

    def _query(self, col: Any, vectors: list[Any], n: int, where: dict[str, Any] | None,
               docs: bool) -> list[list[tuple[str, float, str | None, dict[str, Any]]]]:
        got = self._call(f"query {col.name}", col.query, query_embeddings=vectors, n_results=n, where=where,
                         include=["metadatas", "distances", *(["documents"] if docs else [])])
        documents = got.get("documents") or [[None] * len(ids) for ids in got["ids"]]
        return [list(zip(*columns, strict=True))
                for columns in zip(got["ids"], got["distances"], documents, got["metadatas"], strict=True)]

    def _nearest(self, col: Any, vectors: list[Any], namespace: str, k: int, *, where: dict[str, Any] | None = None,
                 docs: bool = False, conclusive: Callable[[list[Any]], bool] | None = None,
                 ) -> list[list[tuple[str, float, str | None, dict[str, Any]]]]:
        """Per vector, the ``k`` nearest records of ``namespace`` as ``(id, distance, document, metadata)``.

        Chroma's namespace-filtered query costs about the size of the namespace (~40 ms at 10k records,
        ~450 ms at 100k), so unfiltered queries come first, for ``k`` then ``k * _OVERSAMPLE`` candidates:
        a vector is settled once ``k`` candidates are of the namespace (they are its nearest), the whole
        collection was returned, or ``conclusive(candidates)``; only the others take the filtered query.
        An extra ``where`` always takes the filtered query.
        """
        filt = {"namespace": namespace}
        if where:
            return self._query(col, vectors, k, {"$and": [filt, where]}, docs)
        out: list[list[Any]] = [[] for _ in vectors]
        pending = list(range(len(vectors)))
        for n in (k, k * _OVERSAMPLE):
            unsettled = []
            for i, rows in zip(pending, self._query(col, [vectors[i] for i in pending], n, None, docs) if pending
                               else [], strict=True):
                out[i] = [row for row in rows if row[3].get("namespace") == namespace][:k]
                if len(out[i]) < k and len(rows) == n and not (conclusive and conclusive(rows)):
                    unsettled.append(i)
            pending = unsettled
        if pending:
            for i, rows in zip(pending, self._query(col, [vectors[i] for i in pending], k, filt, docs), strict=True):
                out[i] = rows
        return out

    def _locate(self, ids: list[str]) -> dict[str, str]:
        """Map each existing id among ``ids`` to its kind."""
        return {rid: kind for kind in reversed(KINDS) for rid, _, _ in (self._rows(kind, ids=ids, include=())
                                                                        if ids else [])}

    def _problem(self, record: MemoryRecord) -> str:
        if not record.text.strip():
            return "empty text"
        size, limit = len(record.text), self.settings.memory_max_chars
        return f"text has {size} characters, over memory_max_chars={limit}" if size > limit else ""

    def _skip(self, record: MemoryRecord, status: str, reason: str, duplicate_of: str | None = None) -> WriteResult:
        logger.info("memory %s %s %s: %s", record.kind, record.id, status, reason)
        return WriteResult(id=record.id, status=status, reason=reason, duplicate_of=duplicate_of)  # type: ignore[arg-type]

    def add(self, record: MemoryRecord) -> WriteResult:
        """Validate and write one record (rejects empty / oversized / near-duplicates, evicts at capacity)."""
        return self.add_many([record])[0]

    @_locked
    def add_many(self, records: Sequence[MemoryRecord], *,
                 embeddings: Sequence[Any] | None = None) -> list[WriteResult]:
        """Write many records, embedded in batches; same rules as :meth:`add`, one result per record, in order.

        Args:
            records: The records (later ones are also checked against earlier ones for duplicates).
            embeddings: Precomputed vectors, one per record (benchmarks); by default the texts are embedded.
        """
        records = list(records)
        if embeddings is not None and len(embeddings) != len(records):
            raise ConfigError(f"{len(embeddings)} embeddings for {len(records)} records")
        return [result for start in range(0, len(records), _CHUNK)
                for result in self._write(records[start:start + _CHUNK],
                                          None if embeddings is None else embeddings[start:start + _CHUNK])]

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
        near = self._nearest(col, [v for _, v in items], namespace, 2,
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
                           embeddings=[v for _, v in chunk], metadatas=[_to_chroma(r) for r, _ in chunk], mutates=True)
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

    @_locked
    def search(self, kind: Kind, query: str, k: int = 3, *, namespace: str | None = None,
               where: dict[str, Any] | None = None, embedding: Any = None, mark_used: bool = True) -> list[Hit]:
        """The ``k`` records of ``kind`` most similar to ``query``, best first.

        Args:
            kind: Which collection.
            query: The text to match (ignored when ``embedding``, a precomputed vector, is given).
            k: How many hits at most.
            namespace: Searched namespace; ``None`` is the store's (``settings.memory_namespace``): never all.
            where: An extra Chroma filter on the scalar fields (e.g. ``{"task_family": "gsm8k"}``).
            embedding: A precomputed query vector (benchmarks).
            mark_used: Count the hits as used (``use_count`` + 1, ``last_used`` = now); the CLI does not.
        """
        col = self._col(kind)
        if k <= 0 or (embedding is None and not query.strip()):
            return []
        vector = self._embed([query])[0] if embedding is None else embedding
        rows = self._nearest(col, [vector], self.namespace if namespace is None else namespace, k, where=where,
                             docs=True)[0]
        hits = [Hit(record=_from_chroma(i, doc, meta), similarity=1.0 - float(dist)) for i, dist, doc, meta in rows]
        if mark_used and hits:
            now = _now()
            for hit in hits:
                hit.record.use_count, hit.record.last_used = hit.record.use_count + 1, now
            self._call(f"mark used in {kind}", col.update, ids=[h.record.id for h in hits], mutates=True,
                       metadatas=[{"use_count": h.record.use_count, "last_used": now} for h in hits])
        return hits

    @_locked
    def get(self, record_id: str) -> MemoryRecord | None:
        """One record by id, or ``None``."""
        rows = [row for kind in KINDS for row in self._rows(kind, ids=[record_id])]
        return _from_chroma(*rows[0]) if rows else None

    @_locked
    def update(self, record: MemoryRecord) -> WriteResult:
        """Replace a record's text, score and fields (same id, same kind); re-embeds a changed text."""
        current = self.get(record.id)
        problem = self._problem(record) or ("no record with this id" if current is None else "")
        if not problem and current is not None and current.kind != record.kind:
            problem = f"kind cannot change ({current.kind} -> {record.kind})"
        if problem or current is None:
            return self._skip(record, "rejected", problem)
        vectors = self._embed([record.text]) if record.text != current.text else None
        self._call(f"update {record.kind}", self._col(record.kind).update, ids=[record.id], documents=[record.text],
                   metadatas=[_to_chroma(record)], embeddings=vectors, mutates=True)
        return WriteResult(id=record.id, status="updated")

    @_locked
    def delete(self, record_id: str) -> bool:
        """Delete one record; ``False`` when it did not exist."""
        kind = self._locate([record_id]).get(record_id)
        if kind is not None:
            self._call(f"delete from {kind}", self._col(kind).delete, ids=[record_id], mutates=True)
        return kind is not None

    def list(self, kind: Kind | None = None, *, namespace: str | None = None, limit: int = 100) -> list[MemoryRecord]:
        """Records (of ``kind``, in ``namespace``; ``None`` = all), newest first, at most ``limit``."""
        return sorted(self._all(kind, namespace), key=lambda r: (r.created, r.id), reverse=True)[:max(limit, 0)]

    @_locked
    def _all(self, kind: Kind | None = None, namespace: str | None = None) -> list[MemoryRecord]:
        where = {"namespace": namespace} if namespace is not None else None
        return [_from_chroma(*row) for k in ([kind] if kind else KINDS) for row in self._rows(k, where=where)]

    @_locked
    def clear(self, namespace: str | None = None) -> int:
        """Delete everything (in ``namespace`` when given); returns how many records went."""
        gone = 0
        for kind in KINDS:
            ids = [row[0] for row in self._rows(kind, where={"namespace": namespace} if namespace else None,
                                                 include=())]
            for start in range(0, len(ids), self._max_batch):
                self._call(f"clear {kind}", self._col(kind).delete, ids=ids[start:start + self._max_batch],
                           mutates=True)
            gone += len(ids)
        return gone

    @_locked
    def stats(self) -> dict[str, Any]:
        """Counts per kind and namespace, location, backend, schema version, embedder and capacity."""
        counts: dict[str, dict[str, int]] = {}
        for kind in KINDS:
            per_ns: dict[str, int] = {}
            for _, _, meta in self._rows(kind, include=("metadatas",)):
                per_ns[meta.get("namespace", "")] = per_ns.get(meta.get("namespace", ""), 0) + 1
            counts[kind] = dict(sorted(per_ns.items()))
        return {"location": self.location, "backend": "persistent" if self._local else "http",
                "schema_version": SCHEMA_VERSION, "embedder": self.embedder.name(),
                "capacity": self.settings.memory_capacity, "total": sum(sum(c.values()) for c in counts.values()),
                "counts": counts}

    def export(self, path: Path) -> int:
        """Write every record as JSONL, ordered by kind, namespace, created and id; returns the count.

        Written beside ``path`` and renamed into place: a crash never leaves half an export.
        """
        path = Path(path)
        records = sorted(self._all(), key=lambda r: (KINDS.index(r.kind), r.namespace, r.created, r.id))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text("")
        for record in records:
            append_jsonl(tmp, record)
        os.replace(tmp, path)
        return len(records)

    def import_(self, path: Path) -> list[WriteResult]:
        """Read JSONL written by :meth:`export`, keeping ids, timestamps, scores and use counts.

        A record whose id exists (same kind) replaces it (``updated``); the other write rules apply.

        Raises:
            DataError: when the file is missing or a line is not a memory record.
        """
        records = [RECORD_TYPES[r.kind].model_validate(r.model_dump()) for r in read_jsonl(path, MemoryRecord)]
        return [result for start in range(0, len(records), _CHUNK)
                for result in self._replace(records[start:start + _CHUNK])]

    @_locked
    def _replace(self, records: list[MemoryRecord]) -> list[WriteResult]:
        return self._write(records, None, replace=True)

    def close(self) -> None:
        """Release the directory's client and lock file (a later call takes them again); no-op for a server."""
        if self._local and not self._closed:
            self._closed = True
            self._local.release()

    def __enter__(self) -> ChromaMemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ChromaMemoryStore({self.location!r})"


def open_store(settings: Settings | None = None, *, embedding_function: Any = None) -> ChromaMemoryStore:
    """Open the memory store the settings point at: ``memory_url`` (a Chroma server) or ``memory_path``.

    Args:
        settings: Defaults to :func:`~ponder.config.load_settings`.
        embedding_function: See :class:`ChromaMemoryStore` (tests inject a cheap one).

    Raises:
        ConfigError: a bad URL or path, another schema version or embedder.
        MemoryStoreError: the server is unreachable or the directory cannot be opened.
    """
    settings = settings or load_settings()
    if settings.memory_url:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        location = settings.memory_url
        parts = urlsplit(location if "://" in location else f"http://{location}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 8000)
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port < 0:
            raise ConfigError(f"memory_url must look like http://host:port (got {location!r})")
        try:
            client: Any = chromadb.HttpClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                                              settings=ChromaSettings(anonymized_telemetry=False))
        except Exception as exc:
            raise MemoryStoreError(f"cannot reach the Chroma server at {location}: {exc}") from exc
    else:
        path = Path(settings.memory_path).expanduser()
        location = str(path)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"memory_path {path} is not a directory")
        try:
            path.mkdir(parents=True, exist_ok=True)
            client = _LocalClient.acquire(path)
        except OSError as exc:
            raise MemoryStoreError(f"cannot open the memory store at {path}: {exc}") from exc
    try:
        return ChromaMemoryStore(client, settings, location=location, embedding_function=embedding_function)
    except BaseException:
        if isinstance(client, _LocalClient):
            client.release()
        else:
            client.close()
        raise
