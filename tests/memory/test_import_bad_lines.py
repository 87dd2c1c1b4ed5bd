"""``ponder memory import`` / ``import_`` on files with bad lines: every line named, nothing imported by
default, ``--skip-bad-lines`` imports the good ones and lists the skipped ones (real store, hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import BadLinesError, DataError
from ponder.memory.schema import Insight, Reflection
from ponder.memory.store import ChromaMemoryStore

GOOD = Insight(text="Use the calculator for arithmetic", created="2024-01-01T00:00:00+00:00").model_dump_json()
GOOD2 = Reflection(text="Read the question twice", created="2024-01-02T00:00:00+00:00").model_dump_json()


@pytest.fixture
def cli_store(store: ChromaMemoryStore, monkeypatch: pytest.MonkeyPatch) -> ChromaMemoryStore:
    monkeypatch.setenv("PONDER_MEMORY_PATH", str(store.settings.memory_path))
    return store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["memory", "import", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_file_whose_only_line_is_bad_fails_with_file_and_line(cli_store, tmp_path, capsys) -> None:
    path = write(tmp_path / "bad.jsonl", "{ not json\n")
    code, out, err = run(capsys, path)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"{path}:1: not valid JSON (Expecting property name enclosed in double quotes: "
                                "column 3)", f"ponder: error: {path}: no valid memory line (1 bad line)"]
    code, _, err = run(capsys, path, "--skip-bad-lines")  # nothing valid remains: still an error
    assert code == 2 and err.endswith("no valid memory line (1 bad line)\n")
    assert cli_store.stats()["total"] == 0


@pytest.mark.parametrize("content", ["", "\n \n"])
def test_an_empty_file_is_an_error(cli_store, tmp_path, capsys, content) -> None:
    path = write(tmp_path / "empty.jsonl", content)
    code, _, err = run(capsys, path)
    assert code == 2 and err == f"ponder: error: memory file {path} is empty\n"


def test_a_good_line_and_a_torn_last_line_import_nothing_by_default(cli_store, tmp_path, capsys) -> None:
    path = write(tmp_path / "torn.jsonl", GOOD + "\n" + GOOD2[:40])
    code, out, err = run(capsys, path)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0] == f"{path}:2: not valid JSON (Expecting ',' delimiter: column 41)"
    assert lines[1] == (f"ponder: error: {path}: 1 bad line and 1 good: nothing was imported; pass "
                        "--skip-bad-lines to import the good ones")
    assert cli_store.stats()["total"] == 0  # the good line was not imported either


def test_skip_bad_lines_imports_the_good_ones_and_lists_every_skipped_line(cli_store, tmp_path, capsys) -> None:
    path = write(tmp_path / "mixed.jsonl", "\n".join([GOOD, "[1, 2]", '{"kind": "lesson", "text": "x"}',
                                                      '{"kind": "insight", "text": "y", "score": "high"}',
                                                      GOOD2, '{"kind": "insight", "text": "torn']) + "\n")
    code, out, err = run(capsys, path)
    assert code == 2 and [line.split(": ", 1)[0] for line in err.splitlines()[:-1]] == [
        f"{path}:2", f"{path}:3", f"{path}:4", f"{path}:6"]
    assert cli_store.stats()["total"] == 0
    code, out, err = run(capsys, path, "--skip-bad-lines")
    assert code == 0 and out == f"imported from {path}: 2 added, 4 skipped\n"
    assert err.splitlines() == [
        f"skipped {path}:2: expected a JSON object (a memory record), got list",
        f"skipped {path}:3: bad row: kind: expected one of reflection, insight, experience (got 'lesson')",
        f"skipped {path}:4: bad row: score: Input should be a valid number, unable to parse string as a number",
        f"skipped {path}:6: not valid JSON (Unterminated string starting at: column 29)"]
    assert sorted(r.text for r in cli_store.list()) == ["Read the question twice", "Use the calculator for arithmetic"]
    code, out, _ = run(capsys, path, "--skip-bad-lines", "--json")
    statuses = [(r["status"], r["reason"].split(": ", 1)[0]) for r in json.loads(out)]
    assert code == 0 and statuses == [("skipped", f"{path}:2"), ("skipped", f"{path}:3"), ("skipped", f"{path}:4"),
                                      ("skipped", f"{path}:6"), ("updated", ""), ("updated", "")]


def test_api_raises_typed_errors_and_writes_nothing(store: ChromaMemoryStore, tmp_path) -> None:
    path = tmp_path / "mixed.jsonl"
    write(path, GOOD + "\n" + '{"kind": "insight"}\n')
    with pytest.raises(BadLinesError) as info:
        store.import_(path)
    assert info.value.problems == [f"{path}:2: bad row: text: Field required"] and store.stats()["total"] == 0
    results = store.import_(path, skip_bad_lines=True)
    assert [(r.status, r.reason) for r in results] == [("skipped", f"{path}:2: bad row: text: Field required"),
                                                       ("added", "")]
    with pytest.raises(DataError, match="memory file not found"):
        store.import_(tmp_path / "missing.jsonl")


def test_a_hand_written_record_gets_its_kinds_defaults(store: ChromaMemoryStore, tmp_path) -> None:
    path = tmp_path / "hand.jsonl"
    write(path, '{"kind": "reflection", "text": "Check units before answering"}\n')
    [result] = store.import_(path)
    assert result.status == "added" and store.get(result.id).outcome == "failure"  # a Reflection's default
