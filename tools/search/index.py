"""The search index of one corpus (BM25, with dense embeddings on demand), shared per process.

:func:`get_index` loads the corpus and its BM25 index once per process (from the on-disk cache when
possible) and returns the same :class:`SearchIndex` to every caller with the same corpus file and
cache directory, so each agent run gets fresh tools and a fresh session but no index is built twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ponder.core.errors import ConfigError, DataError
from ponder.core.settings import SearchSettings, corpus_path
from ponder.tools.search.bm25 import BM25Index
from ponder.tools.search.corpus import Corpus, load_corpus
from ponder.tools.search.dense import DenseIndex, require_dense
from ponder.tools.search.hits import Hit

__all__ = ["MODES", "SearchIndex", "clear_index_cache", "get_index", "load_index", "reciprocal_rank_fusion"]

Mode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[Mode, ...] = ("bm25", "dense", "hybrid")
RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al., 2009)
FUSION_DEPTH = 50  # results taken from each retriever before fusing

_lock = threading.Lock()
_indexes: dict[tuple[str, int, int, str], SearchIndex] = {}


def reciprocal_rank_fusion(*rankings: list[tuple[int, float]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked lists of ``(doc, score)`` by summing ``1 / (k + rank)``; best first, ties by doc index."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (doc, _) in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class SearchIndex:
    """A corpus with its BM25 index and, once needed, its dense embeddings.

    Attributes:
        corpus: The documents.
        bm25: The BM25 index (``bm25.source`` says whether it came from the cache).
        cache_dir: Where indexes are cached (``None``: in memory only).
    """

    corpus: Corpus
    bm25: BM25Index
    cache_dir: Path | None = None
    _dense: DenseIndex | None = field(default=None, repr=False)
    _dense_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_corpus(cls, corpus: Corpus, cache_dir: Path | None = None) -> SearchIndex:
        """Index ``corpus`` (BM25 now, from the cache when possible; dense on first use)."""
        return cls(corpus=corpus, bm25=BM25Index.for_corpus(corpus, cache_dir), cache_dir=cache_dir)

    def dense(self) -> DenseIndex:
        """The dense index, computed or loaded on first use (slow the first time)."""
        with self._dense_lock:
            if self._dense is None:
                self._dense = DenseIndex.for_corpus(self.corpus, self.cache_dir)
            return self._dense

    def ranked(self, query: str, k: int, mode: Mode = "bm25") -> list[tuple[int, float]]:
        """The top ``k`` ``(doc index, score)`` for ``query``; hybrid scores are RRF scores.

        Raises:
            ConfigError: for an unknown mode. MissingExtraError: for dense/hybrid without the extra.
        """
        if mode == "bm25":
            return self.bm25.search(query, k)
        if mode == "dense":
            return self.dense().search(query, k)
        if mode == "hybrid":
            depth = max(k, FUSION_DEPTH)
            return reciprocal_rank_fusion(self.bm25.search(query, depth), self.dense().search(query, depth))[:k]
        raise ConfigError(f"unknown search mode {mode!r}; choose one of: {', '.join(MODES)}")

    def search(self, query: str, k: int, mode: Mode = "bm25") -> list[Hit]:
        """The top ``k`` documents for ``query`` as :class:`Hit` objects."""
        docs = self.corpus.docs
        return [Hit(title=docs[i].title, text=docs[i].text, score=s, id=docs[i].id)
                for i, s in self.ranked(query, k, mode)]


def load_index(path: Path | str, cache_dir: Path | None = None) -> SearchIndex:
    """The shared index of the corpus file ``path`` (loaded or built once per process).

    The process-level cache is keyed by the file's resolved path, size and modification time and by
    the cache directory, so an edited corpus is re-read.

    Raises:
        DataError: for a missing or malformed corpus file.
    """
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        raise DataError(f"search corpus not found: {path} (set search_corpus or data_dir)") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(cache_dir or ""))
    with _lock:
        index = _indexes.get(key)
        if index is None:
            index = _indexes[key] = SearchIndex.from_corpus(load_corpus(path), cache_dir)
        return index


def get_index(settings: SearchSettings) -> SearchIndex:
    """The shared index of ``settings``' corpus, cached under ``settings.cache_dir``.

    For ``search_mode`` dense or hybrid this checks that the ``embeddings`` extra is installed (so a
    missing extra is reported before the agent starts) but computes the embeddings on first use.

    Raises:
        DataError: for a missing or malformed corpus. MissingExtraError: dense/hybrid without the extra.
    """
    if settings.search_mode != "bm25":
        require_dense()
    return load_index(corpus_path(settings), settings.cache_dir)


def clear_index_cache() -> None:
    """Forget the indexes loaded by this process (the on-disk cache is kept)."""
    with _lock:
        _indexes.clear()
