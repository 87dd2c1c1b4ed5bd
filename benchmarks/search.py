"""Search benchmark: index build time, cached load time and query latency (JSON lines on stdout).

Corpora:

* ``hotpotqa`` -- the shipped HotpotQA corpus (3410 paragraphs); queries are the 258 dev questions
  (``recall_at_5`` = mean fraction of each question's gold supporting titles in the top 5).
* ``synthetic-100k`` -- 100,000 passages generated deterministically (seeded): titles of 2-3 and
  texts of 30-90 pseudo-words drawn with Zipf-like frequencies from a 30,000-word vocabulary;
  queries are 3-5 words sampled from random passages.

For each: ``load_corpus_s`` (read + parse + hash the JSONL), ``build_s`` (tokenize, index, write the
cache; cold cache directory), ``load_s`` (a second load from the on-disk cache), and query latency
p50/p95 in milliseconds for BM25 top-5 (``BM25Index.search``) and for the ``retrieve`` tool (adds
formatting). ``--dense`` adds dense and hybrid rows for HotpotQA (embedding ~3400 paragraphs takes
~25 s on an idle machine, 2-3 minutes on a busy 2-core one, plus ~10 s to import sentence-transformers);
dense over the synthetic corpus (about an hour of embedding on CPU for 100k passages) is skipped and
reported as such.

Usage::

    python benchmarks/search.py                  # bm25 on both corpora
    python benchmarks/search.py --dense          # + dense/hybrid on HotpotQA
    python benchmarks/search.py --docs 20000     # a smaller synthetic corpus
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
HOTPOT = REPO / "data" / "hotpotqa"
DENSE_RATE: dict[str, float] = {}  # the measured embedding rate, for the skip message


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def percentiles(fn: Callable[[str], object], queries: list[str], warmup: int = 5) -> dict[str, float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return {
        "queries": len(times),
        "p50_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
        "mean_ms": round(statistics.fmean(times), 3),
    }


def synthetic_corpus(path: Path, docs: int, seed: int = 0, vocab_size: int = 30_000) -> list[str]:
    """Write ``docs`` passages to ``path``; return 200 queries (words sampled from random passages)."""
    rng = np.random.default_rng(seed)
    syllables = np.array(["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "da", "gu", "ri", "zo", "fa", "be"])
    lengths = rng.integers(2, 5, size=vocab_size)
    vocab = sorted({"".join(rng.choice(syllables, size=n)) for n in lengths})
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    weights /= weights.sum()
    vocab_arr = np.array(vocab)
    text_lens = rng.integers(30, 91, size=docs)
    words = vocab_arr[rng.choice(len(vocab), size=int(text_lens.sum()), p=weights)]
    title_words = vocab_arr[rng.integers(0, len(vocab), size=docs * 3)]
    texts = []
    with path.open("w", encoding="utf-8") as fh:
        offset = 0
        for i in range(docs):
            n = int(text_lens[i])
            text = " ".join(words[offset : offset + n]) + "."
            offset += n
            title = " ".join(title_words[3 * i : 3 * i + 2 + i % 2]).title()
            fh.write(json.dumps({"id": f"syn-{i}", "title": title, "text": text}) + "\n")
            if i < 10_000:
                texts.append(text)
    queries = []
    for _ in range(200):
        text = texts[int(rng.integers(0, len(texts)))].rstrip(".").split()
        queries.append(" ".join(rng.choice(text, size=int(rng.integers(3, 6)), replace=False)))
    return queries


def bench_bm25(name: str, corpus_file: Path, queries: list[str], cache: Path) -> object:
    from ponder.core.settings import load_settings
    from ponder.tools.base import ToolBox
    from ponder.tools.search.bm25 import BM25Index
    from ponder.tools.search.corpus import load_corpus
    from ponder.tools.search.index import SearchIndex
    from ponder.tools.search.tools import search_tools

    start = time.perf_counter()
    corpus = load_corpus(corpus_file)
    load_corpus_s = time.perf_counter() - start
    start = time.perf_counter()
    built = BM25Index.for_corpus(corpus, cache)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    index = BM25Index.for_corpus(corpus, cache)
    load_s = time.perf_counter() - start
    assert (built.source, index.source) == ("built", "cache")
    search_index = SearchIndex(corpus=corpus, bm25=index, cache_dir=cache)
    box = ToolBox(search_tools(load_settings(search_corpus=corpus_file, cache_dir=cache), index=search_index))
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file() and "bm25-" in str(p))
    emit({"corpus": name, "mode": "bm25", "docs": len(corpus), "load_corpus_s": round(load_corpus_s, 3),
          "build_s": round(build_s, 3), "load_s": round(load_s, 3), "index_mb": round(size / 2**20, 1),
          "vocab": len(index.vocab), "search_top5": percentiles(lambda q: index.search(q, 5), queries),
          "retrieve_tool": percentiles(lambda q: box.call("retrieve", q), queries)})
    return search_index


def recall_at_5(search_index: object, questions: list[dict], mode: str) -> float:
    total = 0.0
    for q in questions:
        gold = {title for title, _ in q["supporting_facts"]}
        top = {hit.title for hit in search_index.search(q["question"], 5, mode)}  # type: ignore[attr-defined]
        total += len(gold & top) / len(gold)
    return round(total / len(questions), 3)


def bench_dense(search_index: object, queries: list[str], questions: list[dict], cache: Path) -> None:
    from ponder.tools.search.dense import DenseIndex

    corpus = search_index.corpus  # type: ignore[attr-defined]
    start = time.perf_counter()
    import sentence_transformers  # noqa: F401

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    dense = DenseIndex.for_corpus(corpus, cache)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    again = DenseIndex.for_corpus(corpus, cache)
    load_s = time.perf_counter() - start
    assert (dense.source, again.source) == ("built", "cache")
    search_index._dense = again  # type: ignore[attr-defined]
    DENSE_RATE["docs_per_s"] = len(corpus) / build_s
    emit({"corpus": "hotpotqa", "mode": "dense", "docs": len(corpus), "import_s": round(import_s, 3),
          "build_s": round(build_s, 3), "docs_per_s": round(len(corpus) / build_s, 1), "load_s": round(load_s, 3),
          "search_top5": percentiles(lambda q: search_index.search(q, 5, "dense"), queries),  # type: ignore
          "recall_at_5": recall_at_5(search_index, questions, "dense")})
    emit({"corpus": "hotpotqa", "mode": "hybrid", "docs": len(corpus),
          "search_top5": percentiles(lambda q: search_index.search(q, 5, "hybrid"), queries),  # type: ignore
          "recall_at_5": recall_at_5(search_index, questions, "hybrid")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="synthetic passages (0: skip)")
    parser.add_argument("--dense", action="store_true", help="also dense and hybrid on HotpotQA (~40 s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    import bm25s  # noqa: F401 - imported once here so that build times exclude it

    emit({"env": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                  "bm25s": metadata.version("bm25s"), "numpy": np.__version__},
          "import_bm25s_s": round(time.perf_counter() - start, 3)})
    work = Path(tempfile.mkdtemp(prefix="ponder-search-bench-"))
    try:
        if (HOTPOT / "corpus.jsonl").is_file():
            questions = [json.loads(line) for line in (HOTPOT / "questions.jsonl").read_text().splitlines()]
            queries = [q["question"] for q in questions]
            index = bench_bm25("hotpotqa", HOTPOT / "corpus.jsonl", queries, work / "cache-hotpot")
            emit({"corpus": "hotpotqa", "mode": "bm25", "recall_at_5": recall_at_5(index, questions, "bm25")})
            if args.dense:
                bench_dense(index, queries, questions, work / "cache-hotpot")
        else:
            emit({"corpus": "hotpotqa", "skipped": f"not found at {HOTPOT}"})
        if args.docs:
            path = work / "synthetic.jsonl"
            start = time.perf_counter()
            queries = synthetic_corpus(path, args.docs, seed=args.seed)
            emit({"corpus": f"synthetic-{args.docs // 1000}k", "generate_s": round(time.perf_counter() - start, 3),
                  "file_mb": round(path.stat().st_size / 2**20, 1)})
            bench_bm25(f"synthetic-{args.docs // 1000}k", path, queries, work / "cache-synthetic")
            rate = DENSE_RATE.get("docs_per_s", 30.0)
            emit({"corpus": f"synthetic-{args.docs // 1000}k", "mode": "dense",
                  "skipped": f"embedding {args.docs} passages on this CPU at ~{rate:.0f}/s "
                             f"(the HotpotQA rate, or 30/s assumed) would take ~{args.docs / rate / 60:.0f} minutes"})
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
