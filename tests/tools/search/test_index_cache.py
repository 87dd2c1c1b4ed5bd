from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from ponder.tools.search import bm25 as bm25_module
from ponder.tools.search.bm25 import BM25_VERSION, BM25Index, tokenize
from ponder.tools.search.cache import MANIFEST, cache_key, entry_dir
from ponder.tools.search.corpus import load_corpus
from ponder.tools.search.index import load_index, reciprocal_rank_fusion

from .conftest import HOTPOT_CORPUS


def _entry(corpus, cache):
    return entry_dir(cache, "bm25", cache_key(corpus.sha256, BM25_VERSION))


def test_tokenizer():
    assert tokenize("The Beatles' CITIES, and Beyoncé's bands!") == ["beatle", "city", "beyonce", "band"]
    assert tokenize("the of and") == []


def test_hotpot_index_is_cached_and_reloaded(hotpot_cache):
    corpus = load_corpus(HOTPOT_CORPUS)
    folder = _entry(corpus, hotpot_cache)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["docs"] == 3410 and manifest["version"] == BM25_VERSION
    index = BM25Index.for_corpus(corpus, hotpot_cache)
    assert index.source == "cache" and index.num_docs == 3410
    assert [corpus.docs[i].title for i, _ in index.search("Pete Doherty", 2)][:2] == [
        "Stalking Pete Doherty", "Pete Doherty"]


def test_second_process_loads_the_cached_index(hotpot_cache):
    code = (
        "import sys; from ponder.tools.search.index import load_index; "
        "ix = load_index(sys.argv[1], sys.argv[2]); print(ix.bm25.source, len(ix.corpus))"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-c", code, str(HOTPOT_CORPUS), str(hotpot_cache)],
                         capture_output=True, text=True, timeout=120, env=env, check=True)
    assert out.stdout.split() == ["cache", "3410"]


def test_index_is_shared_per_process(hotpot_cache):
    assert load_index(HOTPOT_CORPUS, hotpot_cache) is load_index(HOTPOT_CORPUS, hotpot_cache)


def test_build_then_cache_on_tiny_corpus(tiny_corpus, tmp_path):
    corpus = load_corpus(tiny_corpus)
    cache = tmp_path / "cache"
    first = BM25Index.for_corpus(corpus, cache)
    second = BM25Index.for_corpus(corpus, cache)
    assert (first.source, second.source) == ("built", "cache")
    assert first.search("Babbage engine", 3) == second.search("Babbage engine", 3)
    assert [p.name for p in (cache / "search").iterdir()] == [_entry(corpus, cache).name]  # no temp dirs left


@pytest.mark.parametrize("damage", ["truncate", "garbage", "no_manifest", "bad_manifest", "wrong_docs"])
def test_damaged_cache_is_rebuilt(tiny_corpus, tmp_path, caplog, damage):
    corpus = load_corpus(tiny_corpus)
    cache = tmp_path / "cache"
    BM25Index.for_corpus(corpus, cache)
    folder = _entry(corpus, cache)
    data = folder / "data.csc.index.npy"
    if damage == "truncate":
        data.write_bytes(data.read_bytes()[:20])
    elif damage == "garbage":
        data.write_bytes(b"x" * data.stat().st_size)
    elif damage == "no_manifest":
        (folder / MANIFEST).unlink()
    elif damage == "bad_manifest":
        (folder / MANIFEST).write_text("{")
    else:  # files intact and verified, but for another corpus size: the loader refuses it
        params = json.loads((folder / "params.index.json").read_text())
        params["num_docs"] = 99
        (folder / "params.index.json").write_text(json.dumps(params))
        manifest = json.loads((folder / MANIFEST).read_text())
        del manifest["files"]["params.index.json"]
        (folder / MANIFEST).write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="ponder.search"):
        rebuilt = BM25Index.for_corpus(corpus, cache)
    assert rebuilt.source == "built"
    if damage != "no_manifest":
        assert "unusable" in caplog.text
    assert BM25Index.for_corpus(corpus, cache).source == "cache"
    assert rebuilt.search("mercury planet", 1)[0][0] == 3


def test_crash_while_saving_leaves_no_entry(tiny_corpus, tmp_path, monkeypatch):
    corpus = load_corpus(tiny_corpus)
    cache = tmp_path / "cache"

    def crash(self, folder):
        (folder / "data.csc.index.npy").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(bm25_module.BM25Index, "save", crash)
    index = BM25Index.for_corpus(corpus, cache)  # still usable, just not cached
    assert index.source == "built" and index.search("Lyon", 1)[0][0] == 6
    assert list((cache / "search").iterdir()) == []  # the temporary directory was removed
    monkeypatch.undo()
    assert BM25Index.for_corpus(corpus, cache).source == "built"
    assert BM25Index.for_corpus(corpus, cache).source == "cache"


def test_corpus_change_changes_the_key(tiny_corpus, tmp_path):
    cache = tmp_path / "cache"
    assert load_index(tiny_corpus, cache).bm25.source == "built"
    with tiny_corpus.open("a") as fh:
        fh.write(json.dumps({"id": "t9", "title": "Zebra", "text": "A zebra is striped."}) + "\n")
    index = load_index(tiny_corpus, cache)  # new size/mtime: re-read, new hash: new index
    assert index.bm25.source == "built" and len(index.corpus) == 9
    assert len(list((cache / "search").iterdir())) == 2


def test_search_edge_cases(tiny_corpus, tmp_path):
    index = load_index(tiny_corpus, tmp_path / "cache")
    assert index.bm25.search("the and of", 5) == []
    assert index.bm25.search("zzzunknownzzz", 5) == []
    assert len(index.bm25.search("English", 100)) == 3  # only documents that score > 0
    assert index.search("Lyon", 1)[0].title == "Lyon"


def test_reciprocal_rank_fusion():
    fused = reciprocal_rank_fusion([(1, 9.0), (2, 5.0)], [(2, 0.9), (3, 0.5)], k=60)
    assert [doc for doc, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
