from __future__ import annotations

import json
import re

import pytest

from ponder.core.errors import DataError
from ponder.core.settings import load_settings
from ponder.tools.base import Tool, ToolBox
from ponder.tools.search import search_tools
from ponder.tools.search.index import get_index
from ponder.tools.search.session import NO_MORE_RESULTS, NO_PAGE, clean_input, page_summary

from .conftest import HOTPOT_CORPUS, HOTPOT_QUESTIONS

RESULT_LINE = re.compile(r"^(\d+)\. (.+?) — (.+)$")


@pytest.fixture
def hotpot(hotpot_settings) -> ToolBox:
    return ToolBox(search_tools(hotpot_settings))


def _titles(observation: str) -> list[str]:
    return [RESULT_LINE.match(line).group(2) for line in observation.splitlines()]


def test_tools_are_tools(hotpot_settings):
    tools = search_tools(hotpot_settings)
    assert [t.name for t in tools] == ["search", "lookup", "retrieve"]
    assert all(isinstance(t, Tool) for t in tools)
    assert len({id(t.session) for t in tools}) == 1
    assert ToolBox(tools).describe().splitlines()[0].startswith("search: Opens the page")


def test_search_exact_title(hotpot, hotpot_settings):
    result = hotpot.call("search", "Pete Doherty")
    assert result.ok
    doc = next(d for d in get_index(hotpot_settings).corpus.docs if d.title == "Pete Doherty")
    assert result.observation == " ".join(doc.sentences[:3])
    assert result.observation.startswith("Peter Doherty (born 12 March 1979) is an English musician")


def test_search_page_is_at_most_five_sentences_and_about_500_chars(hotpot_settings):
    for doc in get_index(hotpot_settings).corpus.docs[:300]:
        shown = page_summary(doc)
        assert shown.startswith(doc.sentences[0])
        assert len(shown) <= max(500, len(doc.sentences[0]))
        kept = [s for s in doc.sentences[:5] if s in shown]
        assert shown == " ".join(kept) and kept == list(doc.sentences[: len(kept)])


@pytest.mark.parametrize("entity", ["pete doherty", "  Pete   Doherty ", "Search[Pete Doherty]", '"Pete Doherty"'])
def test_search_normalises_the_entity(hotpot, entity):
    assert hotpot.call("search", entity).observation.startswith("Peter Doherty (born 12 March 1979)")


def test_search_json_input(hotpot):
    assert hotpot.call("search", '{"entity": "Maine gubernatorial election, 1820"}').observation.startswith(
        "The 1820 Maine gubernatorial election")


def test_search_misspelled_entity_lists_similar_titles(hotpot):
    obs = hotpot.call("search", "Pete Dohrety").observation
    match = re.fullmatch(r"Could not find \[Pete Dohrety\]\. Similar: (\[.*\])\.", obs)
    assert match, obs
    titles = eval(match.group(1))  # a Python list literal, as in the ReAct paper
    assert len(titles) == 5 and "Pete Doherty" in titles


def test_search_unknown_entity(hotpot):
    assert hotpot.call("search", "Qwzxv Blorptastic").observation == (
        "Could not find [Qwzxv Blorptastic]. Similar: [].")


def test_search_empty_entity_is_a_model_error(hotpot):
    result = hotpot.call("search", "  ")
    assert not result.ok and result.observation.startswith("Error: search needs an entity")


def test_lookup_walks_through_sentences(hotpot):
    assert hotpot.call("search", "The Libertines").observation.startswith("The Libertines are an English rock band")
    first = hotpot.call("lookup", "band").observation
    assert first.startswith("(Result 1 / 3) The Libertines are an English rock band")
    assert hotpot.call("lookup", "band").observation.startswith("(Result 2 / 3) ")
    assert hotpot.call("lookup", "band").observation.startswith("(Result 3 / 3) ")
    assert hotpot.call("lookup", "band").observation == NO_MORE_RESULTS == "No more results."
    assert hotpot.call("lookup", "band").observation == NO_MORE_RESULTS
    # a new keyword starts over; matching ignores case
    assert hotpot.call("lookup", "BARÂT").observation.startswith("(Result 1 / 2) ")
    assert hotpot.call("lookup", "band").observation.startswith("(Result 1 / 3) ")
    # a new search resets the cursor
    hotpot.call("search", "The Libertines")
    assert hotpot.call("lookup", "band").observation.startswith("(Result 1 / 3) ")
    assert hotpot.call("lookup", "zeppelin").observation == NO_MORE_RESULTS


def test_lookup_before_search(hotpot):
    assert hotpot.call("lookup", "band").observation == NO_PAGE == "No page loaded: use search first."
    hotpot.call("search", "Qwzxv Blorptastic")  # a failed search loads no page
    assert hotpot.call("lookup", "band").observation == NO_PAGE


def test_each_call_gets_a_fresh_session(hotpot_settings):
    one, two = ToolBox(search_tools(hotpot_settings)), ToolBox(search_tools(hotpot_settings))
    one.call("search", "The Libertines")
    assert one.call("lookup", "band").ok
    assert two.call("lookup", "band").observation == NO_PAGE
    assert one.tools["search"].session.index is two.tools["search"].session.index


def test_retrieve_returns_k_numbered_results(hotpot):
    obs = hotpot.call("retrieve", "Jonny Craig").observation
    lines = obs.splitlines()
    assert len(lines) == 5
    assert [RESULT_LINE.match(line).group(1) for line in lines] == ["1", "2", "3", "4", "5"]
    assert _titles(obs)[0] == "Jonny Craig"
    assert lines[0].startswith('1. Jonny Craig — Jonathan Monroe "Jonny" Craig (born March 26, 1986)')
    assert all(len(RESULT_LINE.match(line).group(3)) <= 201 for line in lines)


def test_retrieve_k_follows_settings(hotpot_cache):
    settings = load_settings(search_corpus=HOTPOT_CORPUS, cache_dir=hotpot_cache, search_k=2)
    assert len(ToolBox(search_tools(settings)).call("retrieve", "Pete Doherty band").observation.splitlines()) == 2


def test_retrieve_no_results(hotpot):
    assert hotpot.call("retrieve", "the of and").observation == "No results for [the of and]."


def test_retrieve_finds_gold_supporting_titles(hotpot):
    questions = [json.loads(line) for line in HOTPOT_QUESTIONS.read_text().splitlines()[:20]]
    found = 0
    for q in questions:
        gold = {title for title, _ in q["supporting_facts"]}
        found += bool(gold & set(_titles(hotpot.call("retrieve", q["question"]).observation)))
    assert found >= 10, f"a gold title in the top 5 for only {found}/20 questions"


def test_tiny_corpus_tools(tiny_settings):
    box = ToolBox(search_tools(tiny_settings))
    assert box.call("search", "Beyonce").observation.startswith("Beyoncé Giselle Knowles-Carter")
    # an ambiguous base title is not guessed
    obs = box.call("search", "Mercury").observation
    assert obs.startswith("Could not find [Mercury]. Similar: ['Mercury (")
    assert "'Mercury (planet)'" in obs and "'Mercury (element)'" in obs
    # the only top hit whose title contains every word of the entity is opened
    assert box.call("search", "Lovelace").observation.startswith("Ada Lovelace was an English mathematician.")
    box.call("search", "Ada Lovelace")
    assert box.call("lookup", "engine").observation == (
        "(Result 1 / 2) She wrote the first published algorithm for Babbage's Analytical Engine.")
    assert len(box.call("retrieve", "English").observation.splitlines()) == 3


def test_missing_corpus_is_a_data_error(tmp_path):
    settings = load_settings(search_corpus=tmp_path / "missing.jsonl", cache_dir=tmp_path)
    with pytest.raises(DataError, match="search corpus not found"):
        search_tools(settings)


def test_bad_corpus_line_through_the_tools(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "title": "A", "text": "x"}\n{"id": "b", "title": "B"}\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: missing field\(s\) text"):
        search_tools(load_settings(search_corpus=path, cache_dir=tmp_path))


def test_clean_input():
    assert clean_input(" Search[ Milhouse ] ") == "Milhouse"
    assert clean_input("'[Milhouse]'") == "Milhouse"
    assert clean_input("lookup[named after]") == "named after"
    assert clean_input("Milhouse [character]") == "Milhouse [character]"
