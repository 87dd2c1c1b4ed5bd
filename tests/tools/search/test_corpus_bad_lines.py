"""A user's search corpus (``search_corpus`` / ``PONDER_SEARCH_CORPUS``) is read strictly: every bad line
is named and the agent never searches a silently smaller corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.errors import BadLinesError, DataError
from ponder.tools.search.corpus import load_corpus

GOOD = json.dumps({"id": "a", "title": "Alpha", "text": "Alpha is first."})


def test_every_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join([GOOD, '{"id": "b", "title": "B"}', "[]", '{"id": "c", "title": " ", "text": "t"}',
                               '{"id": "d", "title": "D", "text": "torn']))
    with pytest.raises(BadLinesError) as info:
        load_corpus(path)
    assert info.value.problems == [
        f"{path}:2: missing field(s) text",
        f"{path}:3: expected a JSON object with id, title and text, got list",
        f"{path}:4: empty title",
        f"{path}:5: not valid JSON (Unterminated string starting at: column 35)"]


def test_only_bad_lines_or_blank_file(tmp_path: Path) -> None:
    path = tmp_path / "corpus.jsonl"
    path.write_text("nope\n")
    with pytest.raises(BadLinesError, match=r"corpus.jsonl: no valid search corpus line \(1 bad line\)"):
        load_corpus(path)
    path.write_text("\n\n")
    with pytest.raises(DataError, match="search corpus file .* is empty"):
        load_corpus(path)
    path.write_text(GOOD + "\n")
    corpus = load_corpus(path)
    assert [d.title for d in corpus.docs] == ["Alpha"] and corpus.path == path


def test_ponder_run_with_a_bad_corpus_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(GOOD + "\n{oops\n")
    script = tmp_path / "s.jsonl"
    script.write_text(json.dumps("Thought: look\nAction: search\nAction Input: Alpha") + "\n"
                      + json.dumps("Final Answer: 1") + "\n")
    monkeypatch.setenv("PONDER_SEARCH_CORPUS", str(corpus))
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["run", "Who is first?", "--tools", "search", "--model", f"scripted:{script}",
                 "--out", str(tmp_path / "runs")])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"{corpus}:2: not valid JSON (Expecting property name enclosed in double quotes: column 2)",
        f"ponder: error: {corpus}: 1 bad line and 1 good: the file was refused; fix the lines listed"]
