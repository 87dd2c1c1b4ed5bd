"""Memory-store benchmark: batched add throughput and query latency at 10k / 100k memories (JSON lines).

Embedding and indexing are measured separately:

* ``embedding`` row -- the real all-MiniLM-L6-v2 (``MiniLMEmbeddingFunction``) on a sample of synthetic
  memory texts: first-use load (import + model), batched texts/s, and single-query embedding latency
  (what :meth:`ChromaMemoryStore.search` adds to a query given as text).
* ``index`` rows, one per size -- seeded random unit vectors (384-d, the model's dimension) are passed
  to Chroma directly, so no embedding is involved: ``store_add_per_s`` is
  ``ChromaMemoryStore.add_many(records, embeddings=...)`` (with its id, near-duplicate and capacity
  checks), ``raw_add_per_s`` the bare ``collection.add`` on a separate directory; query latencies are
  ``store.search(..., embedding=v, mark_used=False)`` (lock + filtered top-k + records), the same
  with ``mark_used=True`` (the default: one more metadata write per search), and the bare
  ``collection.query`` with the same namespace filter. Goals: p95 <= 15 ms at 100k, add >= 1,000/s.

Usage::

    python benchmarks/memory.py                          # --sizes 10000,100000 --queries 200
    python benchmarks/memory.py --sizes 2000 --queries 50 --no-raw --no-embed
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
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DIM = 384
WORDS = ("check units answer search title page convert cents dollars plan step tool calculator python "
         "question twice read carefully lesson failure success retry shorter query keywords verify result "
         "format final number multiply divide table compare entity date year city river").split()
VECTORS_NOTE = ("seeded random unit vectors (384-d) passed to Chroma directly: index cost only, no embedding; "
                "see the embedding row for the model's cost")


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"memory {i}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(15, 40)))) for i in range(n)]


def unit_vectors(n: int, seed: int) -> np.ndarray:
    vecs = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def latency(fn: Callable[[np.ndarray], object], queries: np.ndarray, warmup: int) -> dict[str, float]:
    for q in queries[:warmup]:
        fn(q)
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - start) * 1000)
    qs = statistics.quantiles(times, n=100)
    return {"p50_ms": round(statistics.median(times), 3), "p95_ms": round(qs[94], 3), "max_ms": round(max(times), 3)}


def bench_embedding(sample: int, n_queries: int) -> None:
    from ponder.core.errors import MissingExtraError
    from ponder.memory.embeddings import MiniLMEmbeddingFunction, require_embeddings

    try:
        require_embeddings()
    except MissingExtraError as exc:
        emit({"row": "embedding", "skipped": str(exc)})
        return
    ef = MiniLMEmbeddingFunction()
    start = time.perf_counter()
    ef(["warm up"])
    load_s = time.perf_counter() - start
    docs = texts(sample, seed=1)
    start = time.perf_counter()
    ef(docs)
    batch_s = time.perf_counter() - start
    one = latency(lambda q: ef([str(q)]), np.array(texts(n_queries, seed=2), dtype=object), warmup=3)
    emit({"row": "embedding", "model": "all-MiniLM-L6-v2 (bundled)", "device": "cpu", "first_use_load_s":
          round(load_s, 2), "texts": sample, "mean_words": round(float(np.mean([len(t.split()) for t in docs])), 1),
          "batch_texts_per_s": round(sample / batch_s, 1), "single_query_embed": one})


def bench_size(size: int, n_queries: int, batch: int, warmup: int, raw: bool, root: Path) -> dict:
    from ponder.core.settings import load_settings
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.schema import Insight
    from ponder.memory.store import open_store

    vecs, queries = unit_vectors(size, seed=size), unit_vectors(n_queries, seed=size + 1)
    docs = texts(size, seed=3)
    settings = load_settings(memory_path=root / f"store-{size}", memory_capacity=max(size, 1))
    # the embedder is never called (vectors are given); the hashing one just avoids loading the model
    store = open_store(settings, embedding_function=HashingEmbeddingFunction())
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    for pos in range(0, size, batch):
        records = [Insight(id=f"m{i}", text=docs[i]) for i in range(pos, min(pos + batch, size))]
        for result in store.add_many(records, embeddings=vecs[pos:pos + batch]):
            statuses[result.status] = statuses.get(result.status, 0) + 1
    add_s = time.perf_counter() - start
    row = {"row": "index", "memories": size, "batch": batch, "vectors": VECTORS_NOTE, "write_statuses": statuses,
           "store_add_s": round(add_s, 2), "store_add_per_s": round(size / add_s, 1)}
    row["store_query_k3"] = latency(lambda q: store.search("insight", "", 3, embedding=q, mark_used=False),
                                    queries, warmup)
    row["store_search_mark_used_k3"] = latency(lambda q: store.search("insight", "", 3, embedding=q),
                                               queries[: max(n_queries // 4, 20)], warmup)
    store.close()
    if raw:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        client = chromadb.PersistentClient(path=str(root / f"raw-{size}"),
                                           settings=ChromaSettings(anonymized_telemetry=False))
        col = client.create_collection("raw", embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
        metas = [{"namespace": "default", "kind": "insight"}] * batch
        start = time.perf_counter()
        for pos in range(0, size, batch):
            ids = [f"m{i}" for i in range(pos, min(pos + batch, size))]
            col.add(ids=ids, embeddings=vecs[pos:pos + len(ids)], documents=docs[pos:pos + len(ids)],
                    metadatas=metas[:len(ids)])
        raw_s = time.perf_counter() - start
        row.update(raw_add_s=round(raw_s, 2), raw_add_per_s=round(size / raw_s, 1))
        row["raw_query_k3"] = latency(lambda q: col.query(query_embeddings=[q], n_results=3,
                                                          where={"namespace": "default"}), queries, warmup)
        row["raw_query_k3_no_filter"] = latency(lambda q: col.query(query_embeddings=[q], n_results=3), queries,
                                                warmup)
        client.close()
    row["goal_add_per_s_ge_1000"] = row["store_add_per_s"] >= 1000
    row["goal_query_p95_le_15ms"] = row["store_query_k3"]["p95_ms"] <= 15
    emit(row)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated store sizes")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per size")
    parser.add_argument("--batch", type=int, default=1000, help="records per add_many call")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--embed-sample", type=int, default=256, help="texts embedded for the embedding row")
    parser.add_argument("--no-embed", action="store_true", help="skip the real-model embedding row")
    parser.add_argument("--no-raw", action="store_true", help="skip the bare-Chroma reference")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    emit({"row": "env", "python": platform.python_version(), "chromadb": metadata.version("chromadb"),
          "cpus": os.cpu_count(), "platform": platform.platform(), "sizes": sizes, "queries": args.queries})
    if not args.no_embed:
        bench_embedding(args.embed_sample, min(args.queries, 50))
    root = Path(tempfile.mkdtemp(prefix="ponder-memory-bench-", dir=args.dir))
    try:
        rows = [bench_size(size, args.queries, args.batch, args.warmup, not args.no_raw, root) for size in sizes]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    emit({"row": "summary", "all_goals_met": all(r["goal_add_per_s_ge_1000"] and r["goal_query_p95_le_15ms"]
                                                 for r in rows)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
