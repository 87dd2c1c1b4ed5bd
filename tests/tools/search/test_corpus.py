from __future__ import annotations

import json

import pytest

from ponder.core.errors import DataError
from ponder.tools.search.corpus import load_corpus, normalize_title, split_sentences


def test_tiny_corpus_loads(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    assert len(corpus) == 8 and corpus.path == tiny_corpus and len(corpus.sha256) == 64
    lovelace = corpus.docs[0]
    assert lovelace.id == "t1" and lovelace.title == "Ada Lovelace"
    assert lovelace.sentences == (
        "Ada Lovelace was an English mathematician.",
        "She wrote the first published algorithm for Babbage's Analytical Engine.",
        "Her notes on the engine include a method for Bernoulli numbers.",
    )
    # the `sentences` field is used when present (stripped)
    assert corpus.docs[2].sentences == ("Charles Babbage was an English polymath.",
                                        "He originated the concept of a digital programmable computer.")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="search corpus not found: .*nope.jsonl"):
        load_corpus(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "x", "text": "t"}', "missing field.*title"),
        ('{"id": "x", "title": 3, "text": "t"}', "'title' must be a string"),
        ('{"id": "x", "title": "  ", "text": "t"}', "empty title"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"id": "a", "title": "A", "text": "Alpha."})
    path.write_text(f"{good}\n\n{line}\n{good}\n")
    with pytest.raises(DataError, match=message) as info:
        load_corpus(path)
    assert f"{path}:3:" in str(info.value)


def test_empty_and_non_utf8(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="search corpus file .*empty.jsonl is empty"):
        load_corpus(empty)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"id": "a", "title": "A", "text": "x"}\n{"id": "b", "title": "\xe9", "text": "y"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl:2: not valid UTF-8"):
        load_corpus(latin)


def test_integer_ids_are_strings(tmp_path):
    path = tmp_path / "ints.jsonl"
    path.write_text('{"id": 7, "title": "Seven", "text": "Seven is a number."}\n')
    assert load_corpus(path).docs[0].id == "7"


def test_title_matching(tiny_corpus):
    corpus = load_corpus(tiny_corpus)
    title = lambda i: corpus.docs[i].title  # noqa: E731
    kind, found = corpus.title_matches("Ada Lovelace")
    assert kind == "exact" and [title(i) for i in found] == ["Ada Lovelace"]
    assert corpus.title_matches("  ada   LOVELACE ")[0] == "normalized"
    assert [title(i) for i in corpus.title_matches("beyonce")[1]] == ["Beyoncé"]  # accents folded
    assert [title(i) for i in corpus.title_matches("Beatles")[1]] == ["The Beatles"]  # leading article
    kind, found = corpus.title_matches("mercury")
    assert kind == "base" and sorted(title(i) for i in found) == ["Mercury (element)", "Mercury (planet)"]
    assert corpus.title_matches("Lovelace") == ("", [])
    assert corpus.title_matches("!!") == ("", [])


def test_normalize_and_split():
    assert normalize_title("The  Rolling-Stones!") == "rolling stones"
    assert normalize_title("Maine gubernatorial election, 1820") == "maine gubernatorial election 1820"
    assert split_sentences("It rose 3.5 m. Then it fell! Did it? (Yes.) ok") == [
        "It rose 3.5 m.", "Then it fell!", "Did it?", "(Yes.) ok"]
