r"""BM25 retrieval with ``bm25s``, built once per corpus and cached on disk.

Documents are indexed as ``title + title + text`` (the title twice: entity-style queries should find
the page about the entity first). The tokenizer folds case and accents, keeps words of two or more
characters and single digits (``\w\w+|\d``), drops English stop words (``bm25s``' list) and applies
a plural "S-stemmer" (``cities`` -> ``city``, ``bands`` -> ``band``). Any change to the tokenizer or
the BM25 parameters must bump :data:`BM25_VERSION`, which is part of the cache key.

``bm25s`` (and through it scipy) is imported only when an index is built or loaded.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.tools.search.cache import Source, cache_key, entry_dir, load_or_build
from ponder.tools.search.corpus import Corpus, Doc, fold

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BM25_VERSION", "BM25Index", "tokenize"]

K1 = 1.5
B = 0.75
METHOD = "lucene"
BM25_VERSION = f"bm25-v1:tok=fold-ww+|d-stop_en-sstem:doc=2title+text:k1={K1}:b={B}:{METHOD}"

_TOKEN = re.compile(r"\w\w+|\d")
_PROGRESS_MIN_DOCS = 20_000


def _bm25s() -> Any:
    """Import ``bm25s`` (lazily), quieting the DEBUG level it sets on its own logger."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


@functools.cache
def _stopwords() -> frozenset[str]:
    _bm25s()
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def _stem(word: str) -> str:
    """Harman's S-stemmer: strip English plural endings from words longer than three letters."""
    if len(word) <= 3 or word[-1] != "s" or word.isdigit():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if not word.endswith(("us", "ss")):
        return word[:-1]
    return word


class _Tokenizer:
    """Text to terms, with a per-word memo (a corpus repeats its words, so each is stemmed once)."""

    def __init__(self) -> None:
        self.stop = _stopwords()
        self.memo: dict[str, str | None] = {}

    def __call__(self, text: str) -> list[str]:
        memo, out = self.memo, []
        for word in _TOKEN.findall(fold(text)):
            term = memo.get(word, "")
            if term == "":
                term = memo[word] = None if word in self.stop else _stem(word)
            if term is not None:
                out.append(term)
        return out


def tokenize(text: str) -> list[str]:
    """The terms BM25 indexes for ``text`` (see the module docstring)."""
    return _Tokenizer()(text)


def doc_text(doc: Doc) -> str:
    """The text indexed for a document: its title twice, then its text."""
    return f"{doc.title}\n{doc.title}\n{doc.text}"


def _track(items: Sequence[Doc], description: str) -> Iterator[Doc]:
    """Iterate with a transient Rich progress bar for long builds on a terminal."""
    if len(items) < _PROGRESS_MIN_DOCS or not sys.stderr.isatty():
        return iter(items)
    from rich.progress import track

    return iter(track(items, description=description, transient=True))


class BM25Index:
    """A BM25 index over a corpus.

    Attributes:
        source: ``"built"`` when this process built the index, ``"cache"`` when it was loaded.
    """

    def __init__(self, retriever: Any, source: Source = "built") -> None:
        self.retriever = retriever
        self.vocab: dict[str, int] = retriever.vocab_dict
        self.num_docs: int = int(retriever.scores["num_docs"])
        self.source: Source = source
        self._tokenizer = _Tokenizer()

    @classmethod
    def build(cls, docs: Iterable[Doc]) -> BM25Index:
        """Tokenize and index ``docs`` in memory (no cache)."""
        bm25s = _bm25s()
        docs = list(docs)
        tokenizer = _Tokenizer()
        vocab: dict[str, int] = {}
        ids: list[list[int]] = []
        for doc in _track(docs, "Indexing (BM25)"):
            ids.append([vocab.setdefault(term, len(vocab)) for term in tokenizer(doc_text(doc))])
        retriever = bm25s.BM25(k1=K1, b=B, method=METHOD)
        retriever.index((ids, vocab), show_progress=False)
        return cls(retriever)

    @classmethod
    def load(cls, folder: Path, num_docs: int) -> BM25Index:
        """Load an index saved by :meth:`save`; ``ValueError`` if it does not cover ``num_docs`` documents."""
        bm25s = _bm25s()
        retriever = bm25s.BM25.load(str(folder), mmap=False, show_progress=False)
        index = cls(retriever, source="cache")
        if index.num_docs != num_docs or "" not in index.vocab:
            raise ValueError(f"the cached index has {index.num_docs} documents, the corpus {num_docs}")
        return index

    def save(self, folder: Path) -> None:
        """Write the index files into ``folder``."""
        self.retriever.save(str(folder), show_progress=False)

    @classmethod
    def for_corpus(cls, corpus: Corpus, cache_dir: Path | None) -> BM25Index:
        """Load the cached index of ``corpus`` or build and cache it.

        Args:
            corpus: The documents; ``corpus.sha256`` and :data:`BM25_VERSION` form the cache key.
            cache_dir: The settings' cache directory; ``None`` builds in memory without caching.
        """
        if cache_dir is None:
            return cls.build(corpus.docs)
        folder = entry_dir(cache_dir, "bm25", cache_key(corpus.sha256, BM25_VERSION))
        index, source = load_or_build(
            folder,
            load=lambda path: cls.load(path, len(corpus)),
            build=lambda: cls.build(corpus.docs),
            save=lambda obj, path: obj.save(path),
            what=f"BM25 index of {len(corpus)} documents",
            meta={"version": BM25_VERSION, "corpus_sha256": corpus.sha256, "docs": len(corpus),
                  "corpus": str(corpus.path or "")},
        )
        index.source = source
        return index

    def scores(self, query: str) -> np.ndarray | None:
        """BM25 score of every document for ``query``; ``None`` when no query term is in the vocabulary."""
        ids = [self.vocab[t] for t in self._tokenizer(query) if t in self.vocab]
        if not ids:
            return None
        return self.retriever.get_scores_from_ids(ids)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The top ``k`` documents for ``query`` as ``(doc index, score)``, best first, scores > 0 only."""
        import numpy as np

        scores = self.scores(query)
        if scores is None or k <= 0:
            return []
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties by document order
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]
