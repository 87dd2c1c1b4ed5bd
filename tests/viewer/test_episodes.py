"""viewer.episodes: filters, sort, paging, facets and query parameters of the episode table."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponder.core.records import Usage
from ponder.envs.base import EpisodeResult
from ponder.viewer.catalog import RunEntry
from ponder.viewer.episodes import SORT_KEYS, EpisodeQuery, matches, query_rows
from ponder.viewer.rows import EpisodeRow


def _rows(tmp_path: Path) -> list[EpisodeRow]:
    """Twelve results (read back through the catalog) and one malformed line."""
    folder = tmp_path / "ev"
    folder.mkdir()
    with open(folder / "results.jsonl", "w", encoding="utf-8") as fh:
        for i in range(12):
            ok = i % 3 == 0
            result = EpisodeResult(episode_id=f"ep-{i:02d}", suite="gsm8k", task=f"How many apples? case {i}",
                                   tier=("easy", "hard")[i % 2], success=ok, score=i / 10, status="solved",
                                   failure="" if ok else ("wrong_answer", "max_steps")[i % 2],
                                   prediction=f"{i} apples", gold="Pears" if i == 7 else "3",
                                   usage=Usage(prompt_tokens=100 * (12 - i), model_calls=i))
            fh.write(result.model_dump_json() + "\n")
            if i == 5:
                fh.write("{broken\n")
    return RunEntry.open(folder, "ev").rows


def test_filters(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    assert len(rows) == 13
    page = query_rows(rows, EpisodeQuery(failure="wrong_answer"))
    assert [r.id for r in page.rows] == ["ep-02", "ep-04", "ep-08", "ep-10"] and page.total == 4
    assert [r.id for r in query_rows(rows, EpisodeQuery(tier="hard", failure="max_steps")).rows] == [
        "ep-01", "ep-05", "ep-07", "ep-11"]
    assert [r.id for r in query_rows(rows, EpisodeQuery(q="PEARS")).rows] == ["ep-07"]  # gold, any case
    assert [r.id for r in query_rows(rows, EpisodeQuery(q="case 1")).rows] == ["ep-01", "ep-10", "ep-11"]
    assert [r.id for r in query_rows(rows, EpisodeQuery(q="ep-03")).rows] == ["ep-03"]
    assert [r.id for r in query_rows(rows, EpisodeQuery(q="9 apples")).rows] == ["ep-09"]  # prediction
    bad = query_rows(rows, EpisodeQuery(status="malformed")).rows
    assert len(bad) == 1 and bad[0].line == 7 and bad[0].problem
    assert query_rows(rows, EpisodeQuery(status="nothing-like-it")).total == 0
    row = rows[0]
    assert matches(row, EpisodeQuery()) and matches(row, EpisodeQuery(tier="easy", q="apples"))
    assert not matches(row, EpisodeQuery(tier="hard"))


def test_sort(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    by_tokens = query_rows(rows, EpisodeQuery(sort="tokens", per_page=100)).rows
    assert [r.tokens for r in by_tokens] == sorted(r.tokens for r in rows)
    by_score = query_rows(rows, EpisodeQuery(sort="score", desc=True, per_page=100)).rows
    assert [r.id for r in by_score[:2]] == ["ep-11", "ep-10"]
    assert by_score[-1].problem is not None  # no score: last, either way
    assert query_rows(rows, EpisodeQuery(sort="score", per_page=100)).rows[-1].problem is not None
    by_status = query_rows(rows, EpisodeQuery(sort="status", per_page=100)).rows
    assert by_status[0].status == "malformed"
    assert [r.line for r in by_status[1:]] == sorted(r.line for r in by_status[1:])  # ties by line
    by_line = query_rows(rows, EpisodeQuery(desc=True, per_page=100)).rows
    assert [r.line for r in by_line] == sorted((r.line for r in rows), reverse=True)
    for key in SORT_KEYS:
        assert query_rows(rows, EpisodeQuery(sort=key, per_page=100)).total == 13


def test_paging_and_facets(tmp_path: Path) -> None:
    rows = _rows(tmp_path)
    first = query_rows(rows, EpisodeQuery(per_page=5))
    assert (first.total, first.pages, first.page, len(first.rows)) == (13, 3, 1, 5)
    last = query_rows(rows, EpisodeQuery(per_page=5, page=3))
    assert [r.line for r in last.rows] == [11, 12, 13]
    beyond = query_rows(rows, EpisodeQuery(per_page=5, page=99))
    assert beyond.page == 3 and beyond.rows == last.rows
    empty = query_rows(rows, EpisodeQuery(status="none"))
    assert (empty.total, empty.pages, empty.page, empty.rows) == (0, 1, 1, [])
    assert first.facets["status"] == [("solved", 12), ("malformed", 1)]
    assert first.facets["failure"] == [("max_steps", 4), ("wrong_answer", 4)]
    assert first.facets["tier"] == [("easy", 6), ("hard", 6)]
    assert empty.facets == first.facets  # facets count every row, whatever the filters


def test_from_params_good_and_bad_values() -> None:
    good = EpisodeQuery.from_params({"status": " solved ", "failure": "max_steps", "tier": "hard", "q": "apple",
                                     "sort": "tokens", "desc": "1", "page": "3", "per_page": "20"})
    assert good == EpisodeQuery(status="solved", failure="max_steps", tier="hard", q="apple", sort="tokens",
                                desc=True, page=3, per_page=20)
    bad = EpisodeQuery.from_params({"sort": "__class__", "desc": "perhaps", "page": "-2", "per_page": "1e9",
                                    "q": "x" * 10_000})
    assert (bad.sort, bad.desc, bad.page, bad.per_page) == ("line", False, 1, 50)
    assert len(bad.q) == 500
    assert EpisodeQuery.from_params({}) == EpisodeQuery()
    assert EpisodeQuery.from_params({"page": "two", "per_page": "0"}) == EpisodeQuery()
    assert EpisodeQuery.from_params({"per_page": "501"}).per_page == 50


@pytest.mark.parametrize("changes, expected", [
    ({}, {"status": "solved", "sort": "tokens", "desc": "1"}),
    ({"page": 2}, {"status": "solved", "sort": "tokens", "desc": "1", "page": "2"}),
    ({"desc": False, "status": ""}, {"sort": "tokens"}),
])
def test_params_round_trip(changes: dict[str, object], expected: dict[str, str]) -> None:
    query = EpisodeQuery(status="solved", sort="tokens", desc=True)
    params = query.params(**changes)
    assert params == expected
    assert EpisodeQuery.from_params(params).params() == params
