"""Fixtures of the search tests: the HotpotQA BM25 index is built once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.settings import Settings, load_settings

DATA_DIR = Path(__file__).resolve().parents[3] / "data"  # the data shipped in the repository
HOTPOT_CORPUS = DATA_DIR / "hotpotqa" / "corpus.jsonl"
HOTPOT_QUESTIONS = DATA_DIR / "hotpotqa" / "questions.jsonl"

TINY_DOCS = [
    {"id": "t1", "title": "Ada Lovelace", "text": "Ada Lovelace was an English mathematician. She wrote the first "
     "published algorithm for Babbage's Analytical Engine. Her notes on the engine include a method for "
     "Bernoulli numbers."},
    {"id": "t2", "title": "Analytical Engine", "text": "The Analytical Engine was a proposed mechanical "
     "computer designed by Charles Babbage. It was first described in 1837. The engine was never built."},
    {"id": "t3", "title": "Charles Babbage", "text": "Charles Babbage was an English polymath. He originated "
     "the concept of a digital programmable computer.", "sentences": [
         "Charles Babbage was an English polymath.", " He originated the concept of a digital programmable computer."]},
    {"id": "t4", "title": "Mercury (planet)", "text": "Mercury is the smallest planet in the Solar System. "
     "It is the closest planet to the Sun."},
    {"id": "t5", "title": "Mercury (element)", "text": "Mercury is a chemical element with the symbol Hg. "
     "It is the only metal that is liquid at room temperature."},
    {"id": "t6", "title": "Beyoncé", "text": "Beyoncé Giselle Knowles-Carter is an American singer. She rose "
     "to fame in the late 1990s as the lead singer of Destiny's Child."},
    {"id": "t7", "title": "Lyon", "text": "Lyon is the third-largest city of France. It is located at the "
     "confluence of the rivers Rhône and Saône."},
    {"id": "t8", "title": "The Beatles", "text": "The Beatles were an English rock band formed in Liverpool in "
     "1960. The band's best-known line-up comprised John Lennon, Paul McCartney, George Harrison and Ringo Starr."},
]


@pytest.fixture(scope="session")
def hotpot_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory holding the HotpotQA BM25 index (built once per session)."""
    if not HOTPOT_CORPUS.is_file():
        pytest.fail(f"the shipped HotpotQA corpus is missing: {HOTPOT_CORPUS}", pytrace=False)
    from ponder.tools.search.index import load_index

    cache = tmp_path_factory.mktemp("search-cache")
    index = load_index(HOTPOT_CORPUS, cache)
    assert index.bm25.source == "built"
    return cache


@pytest.fixture
def hotpot_settings(hotpot_cache: Path) -> Settings:
    """Settings pointing at the shipped data and the session's index cache."""
    return load_settings(data_dir=DATA_DIR, cache_dir=hotpot_cache)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A small synthetic JSONL corpus."""
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in TINY_DOCS) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def tiny_settings(tiny_corpus: Path, tmp_path: Path) -> Settings:
    """Settings over the tiny corpus with a private cache directory."""
    return load_settings(search_corpus=tiny_corpus, cache_dir=tmp_path / "cache", search_k=3)
