"""Filtering, sorting and paging a run's episode rows (the run page's table and its live updates)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.viewer.rows import EpisodeRow

#: The columns a table can be sorted by.
SORT_KEYS = ("line", "id", "status", "failure", "tier", "score", "tokens", "steps", "seconds")
#: The columns with facets (value counts for the filter selects).
FACETS = ("status", "failure", "tier")
#: Rows per page: the default and the most one page may ask for.
PER_PAGE, MAX_PER_PAGE = 50, 500
#: Longest filter value kept from a query string.
MAX_PARAM = 500
_TRUE = frozenset({"1", "true", "yes", "on", "desc"})


@dataclass
class EpisodeQuery:
    """What the episode table shows: filters, sort and page.

    Attributes:
        status: Only rows with this status ("" for all).
        failure: Only rows with this failure kind.
        tier: Only rows of this tier.
        q: Case-insensitive text to find in the id, task, prediction or gold.
        sort: One of :data:`SORT_KEYS`.
        desc: Sort descending.
        page: 1-based page (past the last page: the last page).
        per_page: Rows per page (1 to :data:`MAX_PER_PAGE`).
    """

    status: str = ""
    failure: str = ""
    tier: str = ""
    q: str = ""
    sort: str = "line"
    desc: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> EpisodeQuery:
        """The query of a page's parameters; a missing or bad value gets its default (never raises)."""

        def text(name: str) -> str:
            value = params.get(name, "")
            return value.strip()[:MAX_PARAM] if isinstance(value, str) else ""

        sort = text("sort")
        return cls(status=text("status"), failure=text("failure"), tier=text("tier"), q=text("q"),
                   sort=sort if sort in SORT_KEYS else "line", desc=text("desc").lower() in _TRUE,
                   page=_int(text("page"), 1, 1, 10**9), per_page=_int(text("per_page"), PER_PAGE, 1, MAX_PER_PAGE))

    def params(self, **changes: Any) -> dict[str, str]:
        """The query as page parameters (defaults left out), with ``changes`` applied (to build links)."""
        values = {"status": self.status, "failure": self.failure, "tier": self.tier, "q": self.q, "sort": self.sort,
                  "desc": "1" if self.desc else "", "page": str(self.page), "per_page": str(self.per_page)}
        values.update({k: ("1" if v is True else "" if v is False else str(v)) for k, v in changes.items()})
        defaults = {"sort": "line", "page": "1", "per_page": str(PER_PAGE)}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}


def _int(value: str, default: int, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        return default
    return number if low <= number <= high else default


@dataclass
class EpisodePage:
    """One page of filtered, sorted rows.

    Attributes:
        rows: The page's rows.
        total: Rows that match the filters (all pages).
        page: The page shown (the query's, kept within ``1..pages``).
        pages: How many pages the matching rows fill (at least 1).
        facets: For each of :data:`FACETS`, ``(value, count)`` over all the run's rows, most common first.
    """

    rows: list[EpisodeRow]
    total: int
    page: int
    pages: int
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


def matches(row: EpisodeRow, query: EpisodeQuery) -> bool:
    """Whether ``row`` passes the query's filters (status, failure, tier exactly; ``q`` as text)."""
    if query.status and row.status != query.status:
        return False
    if query.failure and row.failure != query.failure:
        return False
    if query.tier and row.tier != query.tier:
        return False
    if query.q:
        needle = query.q.casefold()
        return any(needle in (text or "").casefold() for text in (row.id, row.task, row.prediction, row.gold))
    return True


def _sort_key(name: str) -> Callable[[EpisodeRow], Any]:
    def key(row: EpisodeRow) -> Any:
        value = getattr(row, name)
        return value.casefold() if isinstance(value, str) else value

    return key


def sort_rows(rows: Sequence[EpisodeRow], sort: str, desc: bool) -> list[EpisodeRow]:
    """``rows`` sorted by column ``sort`` (ties by line); rows without a value (``None``, "") come last."""
    key = _sort_key(sort if sort in SORT_KEYS else "line")
    by_line = sorted(rows, key=lambda r: r.line)
    present = [r for r in by_line if key(r) not in (None, "")]
    absent = [r for r in by_line if key(r) in (None, "")]
    return sorted(present, key=key, reverse=desc) + absent


def facets(rows: Sequence[EpisodeRow]) -> dict[str, list[tuple[str, int]]]:
    """``(value, count)`` of each facet column over ``rows``, most common first (empty values left out)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for name in FACETS:
        counts = Counter(getattr(r, name) for r in rows if getattr(r, name))
        out[name] = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return out


def query_rows(rows: Sequence[EpisodeRow], query: EpisodeQuery) -> EpisodePage:
    """The page of ``rows`` that ``query`` asks for, with the facets of all ``rows``."""
    chosen = sort_rows([r for r in rows if matches(r, query)], query.sort, query.desc)
    per_page = query.per_page if 1 <= query.per_page <= MAX_PER_PAGE else PER_PAGE
    pages = max(1, math.ceil(len(chosen) / per_page))
    page = min(max(1, query.page), pages)
    start = (page - 1) * per_page
    return EpisodePage(rows=chosen[start:start + per_page], total=len(chosen), page=page, pages=pages,
                       facets=facets(rows))
