"""ChromaMemoryStore on a real PersistentClient (tmp dirs) and a real ``chroma run`` server.

Most tests embed with the hashing test double; the fresh-process reopen, similarity and near-duplicate
tests use the real MiniLM model.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ponder.core.errors import ConfigError
from ponder.core.settings import load_settings
from ponder.memory.chroma import MemoryStoreError
from ponder.memory.embeddings import HashingEmbeddingFunction
from ponder.memory.schema import Experience, Insight, MemoryRecord, Reflection
from ponder.memory.store import META_COLLECTION, ChromaMemoryStore, open_store


def child_env() -> dict[str, str]:
    """This test's environment (offline, no user ponder.toml) for child processes."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process (nothing registered or cached from this one)."""
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=child_env(), check=False)


def full_record() -> Insight:
    return Insight(text="Check the units — always ✓", namespace="proj", task_family="gsm8k", task="How many m?",
                   outcome="success", run_id="r1", created="2024-01-02T03:04:05+00:00",
                   last_used="2024-02-03T04:05:06+00:00", use_count=7, score=0.1 + 0.2,
                   metadata={"votes": [1, -1], "nested": {"a": None, "b": 1.5}, "ü": "x"})


def test_records_round_trip_exactly(store: ChromaMemoryStore) -> None:
    records = [full_record(), Reflection(text="Plan before acting"), Experience(text="Thought: add\nAnswer: 5")]
    for record in records:
        assert store.add(record).status == "added"
    for record in records:
        back = store.get(record.id)
        assert type(back) is type(record) and back.model_dump() == record.model_dump()
    assert store.get("missing") is None


def test_rejections_are_reported_and_logged(store: ChromaMemoryStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ponder.memory")
    empty, blank = store.add(Insight(text="")), store.add(Insight(text=" \n\t "))
    huge = store.add(Insight(text="x" * (store.settings.memory_max_chars + 1)))
    assert [r.status for r in (empty, blank, huge)] == ["rejected"] * 3
    assert empty.reason == "empty text" and "memory_max_chars" in huge.reason
    kept = Insight(text="a fine lesson")
    assert store.add(kept).status == "added"
    again = store.add(kept.model_copy(update={"text": "different words entirely"}))
    assert again.status == "rejected" and "already exists" in again.reason
    assert store.stats()["total"] == 1
    assert sum("rejected" in m for m in caplog.messages) == 4


def test_near_duplicates_within_kind_and_namespace(store: ChromaMemoryStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ponder.memory")
    first = store.add(Insight(text="Check the units of the answer"))
    dup = store.add(Insight(text="check the UNITS of the answer!"))
    assert dup.status == "duplicate" and dup.duplicate_of == first.id and "cosine" in dup.reason
    assert any("duplicate" in m for m in caplog.messages)
    assert store.add(Insight(text="Check the units of the answer", namespace="other")).status == "added"
    assert store.add(Reflection(text="Check the units of the answer")).status == "added"
    batch = store.add_many([Insight(text="one two three four"), Insight(text="one two three four")])
    assert [r.status for r in batch] == ["added", "duplicate"] and batch[1].duplicate_of == batch[0].id


def test_capacity_evicts_least_useful_first(tmp_path, hashing) -> None:
    settings = load_settings(memory_path=tmp_path / "m", memory_capacity=3)
    with open_store(settings, embedding_function=hashing) as store:
        low = Insight(text="alpha lesson", score=0.5, use_count=9)
        unused = Insight(text="beta lesson", score=1.0, use_count=0, created="2024-01-01T00:00:00+00:00")
        used_old = Insight(text="gamma lesson", score=1.0, use_count=0, created="2023-01-01T00:00:00+00:00",
                           last_used="2024-06-01T00:00:00+00:00")
        other_ns = Insight(text="delta lesson", score=0.0, namespace="elsewhere")
        for record in (low, unused, used_old, other_ns):
            assert store.add(record).evicted == []
        first = store.add(Insight(text="epsilon lesson", score=5.0))
        second = store.add(Insight(text="zeta lesson", score=5.0))
        third = store.add(Insight(text="eta lesson", score=5.0))
        assert (first.evicted, second.evicted, third.evicted) == ([low.id], [unused.id], [used_old.id])
        assert store.get(other_ns.id) is not None  # namespaces have their own capacity
        assert len(store.list("insight", namespace="default")) == 3


def test_search_namespaces_filters_and_use_marks(store: ChromaMemoryStore) -> None:
    a = store.add(Insight(text="use the calculator for arithmetic", task_family="gsm8k")).id
    store.add(Insight(text="search for the page title first", task_family="hotpotqa"))
    store.add(Insight(text="use the calculator for arithmetic", namespace="secret"))
    hits = store.search("insight", "calculator arithmetic", k=5)
    assert hits[0].record.id == a and hits[0].similarity == pytest.approx(2 / 10**0.5, abs=1e-4)  # 2 of 5 words shared
    assert all(h.record.namespace == "default" for h in hits) and len(hits) == 2
    assert hits[0].record.use_count == 1 and hits[0].record.last_used
    assert store.get(a).use_count == 1
    store.search("insight", "calculator", k=1, mark_used=False)
    assert store.get(a).use_count == 1
    only = store.search("insight", "calculator", k=5, where={"task_family": "hotpotqa"})
    assert [h.record.task_family for h in only] == ["hotpotqa"]
    assert [h.record.namespace for h in store.search("insight", "calculator", namespace="secret")] == ["secret"]
    assert store.search("insight", "   ") == [] and store.search("reflection", "calculator") == []
    with pytest.raises(ConfigError, match="unknown memory kind"):
        store.search("bogus", "x")  # type: ignore[arg-type]


def test_small_namespace_among_big_ones_falls_back_to_the_filtered_query(store: ChromaMemoryStore,
                                                                          monkeypatch) -> None:
    # the unfiltered candidates (8 per wanted neighbour) all belong to other namespaces here
    filters = []
    real_query = store._query
    monkeypatch.setattr(store, "_query", lambda col, vectors, n, where, docs: filters.append(where)
                        or real_query(col, vectors, n, where, docs))
    text = "convert the dollars to cents first"
    assert store.add(Insight(text=text, namespace="target")).status == "added"
    store.add_many([Insight(text=text, namespace=f"ns{i}") for i in range(20)])
    store.add_many([Insight(text=f"{text} variant {i}", namespace="big") for i in range(30)])
    again = store.add(Insight(text=text, namespace="target"))
    assert again.status == "duplicate" and store.get(again.duplicate_of).namespace == "target"
    assert filters[-2:] == [None, {"namespace": "target"}]
    assert store.add(Insight(text=text, namespace="fresh")).status == "added"
    small = store.add(Insight(text="dollars only", namespace="small")).id
    hits = store.search("insight", text, k=2, namespace="small")
    assert [h.record.id for h in hits] == [small] and filters[-1] == {"namespace": "small"}
    assert [h.record.namespace for h in store.search("insight", text, k=3, namespace="big")] == ["big"] * 3


def test_exact_text_is_found_even_when_the_vector_index_misses_it(store: ChromaMemoryStore, monkeypatch) -> None:
    # Chroma's HNSW index is approximate: after two writer processes of 500 hashing-embedded notes each, ~2 % of
    # the stored vectors were not returned by a query with their own vector (0.8 % by no query at all: no other
    # node linked to them), so a re-added exact text was accepted. Here the index returns nothing at all.
    text = "Check the units of the answer"
    kept = store.add(Insight(text=text, task_family="gsm8k")).id
    elsewhere = store.add(Insight(text=text, namespace="other")).id
    monkeypatch.setattr(store, "_query", lambda col, vectors, n, where, docs: [[] for _ in vectors])
    again = store.add(Insight(text=text))
    assert again.status == "duplicate" and again.duplicate_of == kept and "cosine 1.000" in again.reason
    assert store.add(Insight(text="check the UNITS of the answer!")).status == "added"  # near: left to the index
    assert [(h.record.id, h.similarity) for h in store.search("insight", text, k=3)] == [(kept, pytest.approx(1.0))]
    assert [h.record.id for h in store.search("insight", text, namespace="other")] == [elsewhere]
    assert [h.record.id for h in store.search("insight", text, where={"task_family": "gsm8k"})] == [kept]
    assert store.search("insight", text, where={"task_family": "hotpotqa"}) == []
    assert store.update(store.get(kept).model_copy(update={"text": "Convert to cents"})).status == "updated"
    assert store.add(Insight(text="Convert to cents")).duplicate_of == kept  # the lookup follows the new text
    assert store.add(Insight(text=text)).status == "added"


def test_update_delete_list_clear_stats(store: ChromaMemoryStore) -> None:
    rec = Insight(text="old words here", created="2024-01-01T00:00:00+00:00")
    store.add(rec)
    newer = Reflection(text="newer lesson", created="2025-01-01T00:00:00+00:00", namespace="b")
    store.add(newer)
    changed = rec.model_copy(update={"text": "brand new text", "score": 9.0, "metadata": {"k": 1}})
    assert store.update(changed).status == "updated"
    assert store.get(rec.id) == changed
    assert store.search("insight", "brand new text", k=1)[0].record.id == rec.id  # re-embedded
    assert store.update(Insight(text="no such id")).status == "rejected"
    assert store.update(Reflection(id=rec.id, text="kind change")).status == "rejected"
    assert store.update(changed.model_copy(update={"text": ""})).reason == "empty text"
    assert [r.id for r in store.list()] == [newer.id, rec.id]
    assert [r.id for r in store.list(limit=1)] == [newer.id]
    assert [r.id for r in store.list("insight")] == [rec.id] and store.list(namespace="b") == [newer]
    stats = store.stats()
    assert stats["counts"]["insight"] == {"default": 1} and stats["counts"]["reflection"] == {"b": 1}
    assert stats["total"] == 2 and stats["schema_version"] == 1 and stats["embedder"] == "ponder-hashing-bow"
    assert store.delete(rec.id) and not store.delete(rec.id)
    store.add(Insight(text="third one"))
    assert store.clear("b") == 1 and store.clear() == 1 and store.stats()["total"] == 0


def test_export_import_round_trip(store: ChromaMemoryStore, tmp_path) -> None:
    records = [full_record(), Reflection(text="lesson one", namespace="x"), Experience(text="trajectory two")]
    store.add_many(records)
    store.search("insight", "units", namespace="proj")  # bumps use_count / last_used: must survive too
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert store.export(first) == 3
    before = {r.id: r for r in store.list(limit=10)}
    assert store.clear() == 3
    assert [r.status for r in store.import_(first)] == ["added"] * 3
    assert {r.id: r for r in store.list(limit=10)} == before
    store.export(second)
    assert first.read_bytes() == second.read_bytes()
    assert [r.status for r in store.import_(first)] == ["updated"] * 3  # same ids replace, no duplicates
    assert store.stats()["total"] == 3


def test_schema_version_and_embedder_are_checked(mem_settings, hashing) -> None:
    from ponder.memory.embeddings import MiniLMEmbeddingFunction

    with open_store(mem_settings, embedding_function=hashing) as store:
        store.add(Insight(text="kept"))
        with pytest.raises(ConfigError, match="holds 'ponder-hashing-bow' embeddings"):
            open_store(mem_settings, embedding_function=MiniLMEmbeddingFunction())
        with open_store(mem_settings) as reopened:  # no embedder given: the store's own is rebuilt
            assert reopened.embedder.name() == "ponder-hashing-bow" and len(reopened.list()) == 1
        meta = store.client.get_collection(META_COLLECTION, embedding_function=None)
        meta.modify(metadata={**meta.metadata, "schema_version": 2})
    with pytest.raises(ConfigError, match=r"has schema version 2; this ponder reads 1; export with the version"):
        open_store(mem_settings, embedding_function=hashing)


def test_chroma_errors_propagate_and_locks_are_retried(store: ChromaMemoryStore, monkeypatch) -> None:
    col = store._collections["insight"]
    real_add = col.add
    calls = []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("error returned from database: (code: 5) database is locked")
        return real_add(**kwargs)

    monkeypatch.setattr(col, "add", flaky)
    assert store.add(Insight(text="eventually written")).status == "added" and len(calls) == 3

    def broken(**kwargs):
        raise ValueError("disk I/O error")

    monkeypatch.setattr(col, "add", broken)
    with pytest.raises(MemoryStoreError, match="write insight failed: disk I/O error"):
        store.add(Insight(text="never written"))
    with pytest.raises(ConfigError, match="2 embeddings for 1 records"):
        store.add_many([Insight(text="x y")], embeddings=[[1.0], [2.0]])


def note(tag: str, i: int) -> str:
    """A note sharing 3 of its 7 words with the others of its writer (never a near-duplicate)."""
    return f"writer {tag} note {i} " + " ".join(f"w{tag}{i * p % 10007}" for p in (7919, 104729, 1299709))


WRITER = f"""
import sys
from ponder.core.settings import load_settings
from ponder.memory.embeddings import HashingEmbeddingFunction
from ponder.memory.schema import Insight
from ponder.memory.store import open_store
{textwrap.dedent(inspect.getsource(note))}
path, tag, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = open_store(load_settings(memory_path=path), embedding_function=HashingEmbeddingFunction())
for start in range(0, count, batch):
    records = [Insight(id=f"{{tag}}-{{i}}", text=note(tag, i)) for i in range(start, min(start + batch, count))]
    for result in store.add_many(records):
        assert result.status == "added", result
        print(result.id, flush=True)
"""


# Chroma keeps each HNSW index in process memory: without the store's lock-and-reload two writers corrupt
# each other's view ("Error finding id", lost vectors). Every add_many call below takes the lock and, when
# the other process wrote in between, reloads; single-record adds cost ~80 ms each that way on this disk
# (fsync-bound), so the 500 records of each process are written 10 per call to keep the test short.
# No check here rests on the approximate search alone: which vectors HNSW misses (~2 % of these tie-heavy
# ones, for a query with their own vector) varies with the writers' interleaving, so the vectors are read back
# by id, and search and add find an exact text by its key (test_exact_text_is_found_even_when...).
@pytest.mark.slow  # 2 x 500 fsynced writes
def test_two_processes_writing_the_same_path(tmp_path) -> None:
    path = str(tmp_path / "shared")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, path, tag, "500", "10"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=child_env()) for tag in ("a", "b")]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    assert sorted(len(out.split()) for out, _ in outs) == [500, 500]
    with open_store(load_settings(memory_path=path)) as store:
        assert store.stats()["total"] == 1000
        assert {r.id for r in store.list("insight", limit=5000)} == {f"{t}-{i}" for t in "ab" for i in range(500)}
        got = store._col("insight").get(include=["embeddings"])  # read from the persisted HNSW index
        want = {f"{t}-{i}": HashingEmbeddingFunction()([note(t, i)])[0] for t in "ab" for i in range(500)}
        assert all(np.allclose(vec, want[rid], atol=1e-6) for rid, vec in zip(got["ids"], got["embeddings"],
                                                                              strict=True)) and len(got["ids"]) == 1000
        for tag, i in (("a", 17), ("b", 499)):
            assert store.search("insight", note(tag, i), k=1, mark_used=False)[0].record.id == f"{tag}-{i}"
        assert store.add(Insight(text=note("b", 3))).duplicate_of == "b-3"


@pytest.mark.slow  # a writer process killed mid-write, then reopened
def test_sigkill_mid_write_keeps_every_acknowledged_write(tmp_path) -> None:
    path = str(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path, "k", "100000", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env())
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.strip())
        if len(acked) == 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with open_store(load_settings(memory_path=path)) as store:
        assert all(store.get(record_id) is not None for record_id in acked)
        assert store.stats()["total"] >= len(acked)
        assert store.add(Insight(text="the store still takes writes")).status == "added"


@pytest.mark.integration
def test_http_client_against_a_real_server(chroma_server, hashing, tmp_path) -> None:
    settings = load_settings(memory_url=chroma_server, memory_namespace="http")
    with open_store(settings, embedding_function=hashing) as store:
        store.clear()
        assert store.stats()["backend"] == "http" and store.stats()["location"] == chroma_server
        rec = full_record().model_copy(update={"namespace": "http"})
        assert store.add(rec).status == "added"
        assert store.add(Insight(text="Check the units, always", namespace="http")).status == "duplicate"
        assert store.get(rec.id) == rec
        assert store.search("insight", "units", k=1)[0].record.id == rec.id
        store.export(tmp_path / "http.jsonl")
    with open_store(settings) as again:  # reopened without an embedder: the recorded one is rebuilt
        assert again.clear() == 1 and again.import_(tmp_path / "http.jsonl")[0].status == "added"
        assert again.get(rec.id).use_count == rec.use_count + 1


def test_bad_urls_and_unreachable_server(tmp_path) -> None:
    with pytest.raises(ConfigError, match="memory_url must look like"):
        open_store(load_settings(memory_url="ftp://x"))
    with pytest.raises(MemoryStoreError, match="cannot reach the Chroma server"):
        open_store(load_settings(memory_url="http://127.0.0.1:9"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        open_store(load_settings(memory_path=tmp_path / "file"))


@pytest.mark.integration
def test_real_embedder_similarity_and_near_duplicates(minilm, mem_settings) -> None:
    with open_store(mem_settings, embedding_function=minilm) as store:
        lessons = ["Always double-check the units of the final answer.",
                   "Knead the dough and let it rise before baking bread.",
                   "When a search returns nothing, try a shorter query with fewer keywords."]
        results = store.add_many([Insight(text=t) for t in lessons])
        assert [r.status for r in results] == ["added"] * 3
        hits = store.search("insight", "How should I make a loaf at home?", k=3)
        assert hits[0].record.text == lessons[1] and hits[0].similarity > 0.4 > hits[1].similarity
        assert store.search("insight", "my web lookup found no results", k=1)[0].record.text == lessons[2]
        dup = store.add(Insight(text="Always double check the units of the final answer!"))
        assert dup.status == "duplicate" and dup.duplicate_of == results[0].id
        paraphrase = store.add(Insight(text="Verify that the final answer uses the right units."))
        assert paraphrase.status == "added"  # related (cosine ~0.89) but not a near-duplicate


@pytest.mark.integration
def test_real_embedder_store_reopens_in_a_fresh_process(minilm, mem_settings) -> None:
    with open_store(mem_settings) as store:  # the default embedder: MiniLM
        assert store.embedder.name() == "ponder-minilm"
        store.add_many([Reflection(text="Knead the dough and let it rise before baking bread."),
                        Reflection(text="Always double-check the units of the final answer.")])
    code = textwrap.dedent("""
        import json, sys
        from ponder.core.settings import load_settings
        from ponder.memory.store import open_store
        store = open_store(load_settings(memory_path=sys.argv[1]))
        hits = store.search("reflection", "How should I make a loaf at home?", k=2)
        print(json.dumps([[h.record.text, h.similarity] for h in hits]))
    """)
    done = run_child(code, str(mem_settings.memory_path), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    hits = json.loads(done.stdout.strip().splitlines()[-1])
    assert hits[0][0].startswith("Knead the dough") and hits[0][1] > hits[1][1]


def test_memory_record_base_type_is_rebuilt_by_kind(store: ChromaMemoryStore) -> None:
    store.add(MemoryRecord(kind="experience", text="generic record"))
    assert type(store.list("experience")[0]) is Experience
