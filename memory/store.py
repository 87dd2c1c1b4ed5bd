"""The Chroma memory store: one collection per kind, namespaces in metadata, never-silent writes.

Layout (``SCHEMA_VERSION`` 1): cosine collections ``ponder-reflection``, ``ponder-insight`` and
``ponder-experience``, plus ``ponder-meta`` whose metadata records the schema version and the embedder.
How a record becomes a Chroma row, and the cross-process lock of a directory store, are in
:mod:`ponder.memory.chroma`; the write rules (empty / oversized text, near-duplicates of the same kind
and namespace, eviction of the least useful records at capacity; each outcome a ``WriteResult``) are in
:mod:`ponder.memory.write_rules`. Chroma failures raise :class:`MemoryStoreError`; SQLite lock
contention is retried (bounded).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ponder.core.datafiles import read_jsonl_file
from ponder.core.errors import ConfigError, PonderError
from ponder.core.io import atomic_writer
from ponder.core.settings import Settings, load_settings
from ponder.core.types import MemoryKind, choices
from ponder.memory.chroma import (
    LOCK_FILE,
    LocalClient,
    MemoryStoreError,
    connect,
    exact_matches,
    from_chroma,
    locked,
    to_chroma,
)
from ponder.memory.embeddings import MiniLMEmbeddingFunction, build_embedding_function
from ponder.memory.schema import SCHEMA_VERSION, Hit, MemoryRecord, WriteResult, parse_record
from ponder.memory.write_rules import CHUNK, WriteRules

__all__ = ["KINDS", "LOCK_FILE", "META_COLLECTION", "ChromaMemoryStore", "MemoryStoreError", "open_store"]

T = TypeVar("T")

KINDS = choices(MemoryKind)  # in order: the export sorts by it
META_COLLECTION = "ponder-meta"
_LOCKED = ("database is locked", "database table is locked", "database is busy")
_RETRIES = 30
_OVERSAMPLE = 8  # unfiltered candidates per wanted neighbour before a namespace-filtered query


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ChromaMemoryStore(WriteRules):
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
        self._local = client if isinstance(client, LocalClient) else None
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
                 texts: Sequence[str] | None = None) -> list[list[tuple[str, float, str | None, dict[str, Any]]]]:
        """Per vector, the ``k`` nearest records of ``namespace`` as ``(id, distance, document, metadata)``.

        Chroma's namespace-filtered query costs about the size of the namespace (~40 ms at 10k records,
        ~450 ms at 100k), so unfiltered queries come first, for ``k`` then ``k * _OVERSAMPLE`` candidates:
        a vector is settled once ``k`` candidates are of the namespace (they are its nearest), the whole
        collection was returned, or ``conclusive(candidates)``; only the others take the filtered query.
        An extra ``where`` always takes the filtered query. With ``texts`` (the vectors' texts), the records
        of exactly that text are among the results whatever the index returned, ahead of others at the same
        distance (:func:`~ponder.memory.chroma.exact_matches`: the HNSW index can miss a record entirely).
        """
        filt = {"namespace": namespace}
        out = self._ann(col, vectors, filt, k, where, docs, conclusive)
        for i, exact in enumerate([] if texts is None else exact_matches(
                lambda **kw: self._call(f"read {col.name}", col.get, **kw), vectors, texts, namespace, where)):
            if exact:
                ids = {row[0] for row in exact}
                out[i] = sorted(exact + [row for row in out[i] if row[0] not in ids], key=lambda row: row[1])[:k]
        return out

    def _ann(self, col: Any, vectors: list[Any], filt: dict[str, Any], k: int, where: dict[str, Any] | None,
             docs: bool, conclusive: Callable[[list[Any]], bool] | None) -> list[list[Any]]:
        """The approximate (HNSW) part of :meth:`_nearest`."""
        if where:
            return self._query(col, vectors, k, {"$and": [filt, where]}, docs)
        namespace = filt["namespace"]
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

    def add(self, record: MemoryRecord) -> WriteResult:
        """Validate and write one record (rejects empty / oversized / near-duplicates, evicts at capacity)."""
        return self.add_many([record])[0]

    @locked
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
        return [result for start in range(0, len(records), CHUNK)
                for result in self._write(records[start:start + CHUNK],
                                          None if embeddings is None else embeddings[start:start + CHUNK])]

    @locked
    def search(self, kind: MemoryKind, query: str, k: int = 3, *, namespace: str | None = None,
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
                             docs=True, texts=None if embedding is not None else [query])[0]
        hits = [Hit(record=from_chroma(i, doc, meta), similarity=1.0 - float(dist)) for i, dist, doc, meta in rows]
        if mark_used and hits:
            now = _now()
            for hit in hits:
                hit.record.use_count, hit.record.last_used = hit.record.use_count + 1, now
            self._call(f"mark used in {kind}", col.update, ids=[h.record.id for h in hits], mutates=True,
                       metadatas=[{"use_count": h.record.use_count, "last_used": now} for h in hits])
        return hits

    @locked
    def get(self, record_id: str) -> MemoryRecord | None:
        """One record by id, or ``None``."""
        rows = [row for kind in KINDS for row in self._rows(kind, ids=[record_id])]
        return from_chroma(*rows[0]) if rows else None

    @locked
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
                   metadatas=[to_chroma(record)], embeddings=vectors, mutates=True)
        return WriteResult(id=record.id, status="updated")

    @locked
    def delete(self, record_id: str) -> bool:
        """Delete one record; ``False`` when it did not exist."""
        kind = self._locate([record_id]).get(record_id)
        if kind is not None:
            self._call(f"delete from {kind}", self._col(kind).delete, ids=[record_id], mutates=True)
        return kind is not None

    def list(self, kind: MemoryKind | None = None, *, namespace: str | None = None,
             limit: int = 100) -> list[MemoryRecord]:
        """Records (of ``kind``, in ``namespace``; ``None`` = all), newest first, at most ``limit``."""
        return sorted(self._all(kind, namespace), key=lambda r: (r.created, r.id), reverse=True)[:max(limit, 0)]

    @locked
    def _all(self, kind: MemoryKind | None = None, namespace: str | None = None) -> list[MemoryRecord]:
        where = {"namespace": namespace} if namespace is not None else None
        return [from_chroma(*row) for k in ([kind] if kind else KINDS) for row in self._rows(k, where=where)]

    @locked
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

    @locked
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

        Written to a fresh temporary file beside ``path`` (:func:`~ponder.core.io.atomic_writer`) and renamed
        into place: a crash never leaves half an export, and no symlink can redirect the write.
        """
        records = sorted(self._all(), key=lambda r: (KINDS.index(r.kind), r.namespace, r.created, r.id))
        with atomic_writer(path) as fh:
            for record in records:
                fh.write(record.model_dump_json() + "\n")
        return len(records)

    def import_(self, path: Path, *, skip_bad_lines: bool = False) -> list[WriteResult]:
        """Read JSONL written by :meth:`export`, keeping ids, timestamps, scores and use counts.

        The file is read whole first (:func:`~ponder.core.datafiles.read_jsonl_file`): by default a file with
        any unreadable line imports nothing. A record whose id exists (same kind) replaces it (``updated``);
        the other write rules apply.

        Args:
            path: The JSONL file.
            skip_bad_lines: Import the good lines; each bad one comes back as a ``skipped`` result whose
                reason is ``file:line: problem``.

        Raises:
            DataError: when the file is missing, empty or has no memory record.
            BadLinesError: listing every bad line, when some line is not a memory record (unless
                ``skip_bad_lines``).
        """
        read = read_jsonl_file(path, parse_record, what="memory", skip_bad_lines=skip_bad_lines,
                               hint="nothing was imported; pass --skip-bad-lines to import the good ones")
        records = read.values()
        skipped = [WriteResult(id="", status="skipped", reason=reason) for reason in read.skipped]
        return skipped + [result for start in range(0, len(records), CHUNK)
                          for result in self._replace(records[start:start + CHUNK])]

    @locked
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
        settings: Defaults to :func:`~ponder.core.settings.load_settings`.
        embedding_function: See :class:`ChromaMemoryStore` (tests inject a cheap one).

    Raises:
        ConfigError: a bad URL or path, another schema version or embedder.
        MemoryStoreError: the server is unreachable or the directory cannot be opened.
    """
    settings = settings or load_settings()
    client, location = connect(settings)
    try:
        return ChromaMemoryStore(client, settings, location=location, embedding_function=embedding_function)
    except BaseException:
        if isinstance(client, LocalClient):
            client.release()
        else:
            client.close()
        raise
