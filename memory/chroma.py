"""Chroma plumbing behind the memory store: connecting, the cross-process lock and the row layout.

A record is stored as its ``text`` (the document), its id and flat metadata: the scalar fields as they
are, ``kind``, ``metadata`` as JSON and ``text_sha256``, the text's SHA-256 (:func:`to_chroma` /
:func:`from_chroma`; the store finds exact text matches by it, not by the approximate vector index).
A directory store is shared by every process that opens it through :class:`LocalClient`, which
serialises operations with an ``flock`` on ``LOCK_FILE`` and reloads Chroma's in-memory index when
another process wrote.
``chromadb`` itself is imported only when a client is built (``import chromadb`` takes over a second).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from ponder.core.errors import ConfigError, PonderError
from ponder.core.settings import Settings
from ponder.memory.schema import RECORD_TYPES, MemoryRecord

__all__ = ["LOCK_FILE", "TEXT_KEY", "LocalClient", "MemoryStoreError", "connect", "exact_matches", "from_chroma",
           "locked", "text_key", "to_chroma"]

F = TypeVar("F", bound=Callable[..., Any])

LOCK_FILE = "ponder-memory.lock"
TEXT_KEY = "text_sha256"  # metadata field: the text's SHA-256 (absent on rows written before it existed)
_SCALARS = ("namespace", "task_family", "task", "outcome", "run_id", "created", "last_used", "use_count", "score")


class MemoryStoreError(PonderError):
    """The memory store (Chroma, its disk or its server) failed on our side."""


def text_key(text: str) -> str:
    """The ``TEXT_KEY`` value of ``text``: its UTF-8 SHA-256, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_chroma(record: MemoryRecord) -> dict[str, Any]:
    """The flat Chroma metadata of ``record``: its scalar fields, ``kind``, ``metadata`` as JSON, the text's key.

    Args:
        record: The record to store.

    Returns:
        The metadata dict (the text and id are stored apart, as document and id).
    """
    data = record.model_dump(mode="json")
    meta = {key: data[key] for key in _SCALARS}
    meta.update(kind=record.kind, metadata=json.dumps(data["metadata"], ensure_ascii=False))
    meta[TEXT_KEY] = text_key(record.text)
    return meta


def from_chroma(record_id: str, document: str | None, meta: dict[str, Any]) -> MemoryRecord:
    """Rebuild a record from a Chroma row (the inverse of :func:`to_chroma`).

    Args:
        record_id: The row's id.
        document: The row's document (the record's text); ``None`` reads as empty.
        meta: The row's metadata.

    Returns:
        The record, of the class its ``kind`` names.
    """
    data = {key: meta[key] for key in _SCALARS if key in meta}
    data.update(id=record_id, text=document or "", kind=meta["kind"], metadata=json.loads(meta.get("metadata", "{}")))
    return RECORD_TYPES[meta["kind"]].model_validate(data)


def exact_matches(get: Callable[..., dict[str, Any]], vectors: Sequence[Any], texts: Sequence[str], namespace: str,
                  where: dict[str, Any] | None = None) -> list[list[tuple[str, float, str, dict[str, Any]]]]:
    """Per text, the stored rows of ``namespace`` (and ``where``) whose text is exactly it, found by ``TEXT_KEY``.

    Chroma's HNSW index is approximate: a stored vector can be missed by a query with that very vector
    (2 % of 1,000 tie-heavy test vectors on average), or by every query (a node no other links to:
    0.8 %), so an exact match is looked up in the metadata instead (rows written before ``TEXT_KEY``
    existed lack it and are left to the index).
    The lookup filters on the key alone (~2 ms at 10k rows; adding the namespace to Chroma's filter
    makes it scan the namespace, ~10 ms): the namespace is checked here, and an extra ``where`` by
    Chroma on the few matches only.

    Args:
        get: The collection's ``get`` (through the store's retrying wrapper).
        vectors: One query vector per text (for the distances).
        texts: The texts.
        namespace: The namespace searched.
        where: Another Chroma filter the rows must pass.

    Returns:
        Per text, ``(id, cosine distance to its vector, document, metadata)`` of each exact match.
    """
    import numpy as np

    got = get(where={TEXT_KEY: {"$in": sorted({text_key(t) for t in texts})}},
              include=["documents", "metadatas", "embeddings"])
    rows = [(rid, doc, meta, emb) for rid, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"],
                                                                 got["embeddings"] if got["ids"] else [], strict=True)
            if meta.get("namespace") == namespace]
    if rows and where:
        allowed = set(get(ids=[row[0] for row in rows], where=where, include=[])["ids"])
        rows = [row for row in rows if row[0] in allowed]
    found: dict[str, list[tuple[str, dict[str, Any], Any]]] = {}
    for rid, doc, meta, emb in rows:
        found.setdefault(doc, []).append((rid, meta, np.asarray(emb, dtype=np.float32)))
    out = []
    for vec, text in zip(vectors, texts, strict=True):
        q = np.asarray(vec, dtype=np.float32)
        out.append([(rid, 1.0 - float(q @ e) / (float(np.linalg.norm(q) * np.linalg.norm(e)) or 1.0), text, meta)
                    for rid, meta, e in found.get(text, [])])
    return out


class LocalClient:
    """One ``PersistentClient`` per directory and process, behind a lock shared with other processes.

    Chroma keeps each HNSW index in the memory of the process that opened it and never sees another
    process's writes (its queries then fail with "Error finding id" or miss records, and an index it
    persists loses vectors). So each store operation holds an exclusive ``flock`` on ``LOCK_FILE``; an
    operation that wrote leaves a fresh token there, and a process finding another process's token
    reopens its client, which reloads the index from disk and the write log, before going on.

    Attributes:
        path: The store's directory.
        key: The resolved directory, the key of the per-process registry.
        users: How many open stores share this client.
        epoch: Bumped each time the ``chromadb`` client is (re)opened; collection handles of an older
            epoch are stale.
        client: The ``chromadb.PersistentClient``, or ``None`` before the first :meth:`guard`.
    """

    _open: ClassVar[dict[str, LocalClient]] = {}
    _registry = threading.Lock()

    def __init__(self, path: Path, key: str) -> None:
        from chromadb.config import Settings as ChromaSettings

        self.path, self.key, self.users, self.epoch, self.client = path, key, 0, 0, None
        self._chroma_settings = ChromaSettings(anonymized_telemetry=False)  # built once: pydantic-settings is slow
        self._seen, self._depth, self._dirty = "", 0, False
        self._mutex = threading.RLock()
        self._fh = open(path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - closed in release()

    @classmethod
    def acquire(cls, path: Path) -> LocalClient:
        """Take the shared client of ``path`` (created on first use); pair with :meth:`release`.

        Args:
            path: The store's directory (it must exist).

        Returns:
            The client shared by this process's stores of that directory.
        """
        key = str(path.resolve())
        with cls._registry:
            local = cls._open.get(key) or cls._open.setdefault(key, cls(path, key))
            local.users += 1
            return local

    def release(self) -> None:
        """Give the client back; the last user closes it and the lock file."""
        with self._registry:
            self.users -= 1
            if self.users <= 0:
                self._open.pop(self.key, None)
                if self.client is not None:
                    self.client.close()
                self._fh.close()

    def mutated(self) -> None:
        """Note that the current operation wrote, so other processes reload when it ends."""
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


def locked(method: F) -> F:
    """Run a store method under its directory's cross-process lock (no-op for a server).

    The decorated method's object needs ``_local`` (its :class:`LocalClient` or ``None``), ``_closed``
    and ``_epoch``; a store used after ``close()`` takes its directory's client again.

    Args:
        method: A method of :class:`~ponder.memory.store.ChromaMemoryStore`.

    Returns:
        The wrapped method.
    """

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._local is None:
            return method(self, *args, **kwargs)
        if self._closed:  # used after close(): take the directory's client again
            self._local, self._closed, self._epoch = LocalClient.acquire(self._local.path), False, -1
        with self._local.guard():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def connect(settings: Settings) -> tuple[Any, str]:
    """A client for the store the settings point at: ``memory_url`` (a Chroma server) or ``memory_path``.

    Args:
        settings: Where the store is.

    Returns:
        ``(client, location)``: a ``chromadb.HttpClient`` or the directory's acquired :class:`LocalClient`
        (the caller releases it), and the URL or path for messages.

    Raises:
        ConfigError: a bad URL, or a path that is not a directory.
        MemoryStoreError: the server is unreachable or the directory cannot be opened.
    """
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
            client = LocalClient.acquire(path)
        except OSError as exc:
            raise MemoryStoreError(f"cannot open the memory store at {path}: {exc}") from exc
    return client, location
