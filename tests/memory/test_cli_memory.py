"""``ponder memory ...`` over a real store on disk (created with the hashing test double, which the CLI
then rebuilds from the store's own record of its embedder)."""

from __future__ import annotations

import json

import pytest

from ponder.cli import main
from ponder.memory.schema import Experience, Insight, Reflection
from ponder.memory.store import ChromaMemoryStore


@pytest.fixture
def filled(store: ChromaMemoryStore, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("PONDER_MEMORY_PATH", str(store.settings.memory_path))
    records = [Insight(text="Use the calculator for arithmetic", created="2024-01-01T00:00:00+00:00", score=3),
               Reflection(text="Read the question twice [bold]carefully[/]", namespace="exp",
                          created="2024-01-02T00:00:00+00:00"),
               Experience(text="Thought: search the title first", created="2024-01-03T00:00:00+00:00")]
    assert [r.status for r in store.add_many(records)] == ["added"] * 3
    return {r.kind: r.id for r in records}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["memory", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_table_and_json(filled, capsys, monkeypatch) -> None:
    from ponder.core.console import console

    code, out, _ = run(capsys, "list")  # 80 columns: ids stay whole
    assert code == 0 and all(record_id in out for record_id in filled.values())
    monkeypatch.setattr(console, "width", 160)
    code, out, _ = run(capsys, "list")
    assert code == 0 and "Read the question twice [bold]carefully[/]" in out  # markup is shown, not applied
    code, out, _ = run(capsys, "list", "--json", "--kind", "reflection")
    assert code == 0 and [r["id"] for r in json.loads(out)] == [filled["reflection"]]
    _, out, _ = run(capsys, "list", "--json", "--limit", "2")
    assert [r["kind"] for r in json.loads(out)] == ["experience", "reflection"]  # newest first
    _, out, _ = run(capsys, "list", "--json", "--namespace", "exp")
    assert [r["namespace"] for r in json.loads(out)] == ["exp"]
    code, _, err = run(capsys, "list", "--kind", "lesson")
    assert code == 2 and err.strip().count("\n") == 0 and "Invalid value for '--kind': 'lesson' is not one of" in err


def test_search_show_delete(filled, store, capsys) -> None:
    code, out, _ = run(capsys, "search", "calculator arithmetic", "--json")
    hits = json.loads(out)
    assert code == 0 and hits[0]["record"]["id"] == filled["insight"] and hits[0]["similarity"] > 0.5
    assert store.get(filled["insight"]).use_count == 0  # inspecting is not using
    code, out, _ = run(capsys, "search", "calculator", "--kind", "insight")
    assert code == 0 and "similarity" in out and filled["insight"] in out
    code, out, _ = run(capsys, "show", filled["insight"], "--json")
    assert code == 0 and json.loads(out)["score"] == 3.0
    code, out, _ = run(capsys, "show", filled["reflection"])
    assert code == 0 and "namespace: exp" in out
    code, out, err = run(capsys, "show", "nope")
    assert code == 2 and out == "" and err == "ponder: error: no memory with id 'nope'\n"
    code, out, _ = run(capsys, "delete", filled["insight"])
    assert code == 0 and store.get(filled["insight"]) is None
    code, _, err = run(capsys, "delete", filled["insight"])
    assert code == 2 and "no memory with id" in err


def test_clear_needs_yes(filled, store, capsys) -> None:
    code, out, err = run(capsys, "clear")
    assert code == 2 and out == "" and err == ("ponder: error: refusing to clear the memories of every namespace "
                                                "without --yes\n")
    assert store.stats()["total"] == 3
    code, out, _ = run(capsys, "clear", "--namespace", "exp", "--yes")
    assert code == 0 and "deleted 1 memories" in out and store.stats()["total"] == 2
    code, out, _ = run(capsys, "clear", "--yes")
    assert code == 0 and store.stats()["total"] == 0


def test_stats(filled, capsys) -> None:
    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["total"] == 3 and stats["counts"]["reflection"] == {"exp": 1}
    assert stats["embedder"] == "ponder-hashing-bow" and stats["backend"] == "persistent"
    code, out, _ = run(capsys, "stats")
    assert code == 0 and "schema    v1" in out and "total 3" in out


def test_export_clear_import_export_is_identical(filled, store, tmp_path, capsys) -> None:
    store.search("insight", "calculator")  # use counts and last_used must survive the round trip
    first, second = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    code, out, _ = run(capsys, "export", str(first))
    assert code == 0 and out.startswith("exported 3 memories")
    assert run(capsys, "clear", "--yes")[0] == 0
    code, out, _ = run(capsys, "import", str(first))
    assert code == 0 and "3 added" in out
    assert run(capsys, "export", str(second))[0] == 0
    assert first.read_bytes() == second.read_bytes()
    code, out, _ = run(capsys, "import", str(first), "--json")
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["updated"] * 3
    code, _, err = run(capsys, "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "memory file not found" in err
