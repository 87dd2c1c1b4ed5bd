"""The state of one agent run's search: the current page and the lookup cursor (as in ReAct's wikienv).

``search[entity]`` loads the page whose title matches the entity and shows its first sentences, or
lists similar titles; ``lookup[keyword]`` walks through the current page's sentences that contain the
keyword, one per call. Observations follow the ReAct paper (Yao et al., 2023)::

    search[Pete Doherty]    -> Peter Doherty (born 12 March 1979) is an English musician, ...
    search[Pete Dohrety]    -> Could not find [Pete Dohrety]. Similar: ['Pete Doherty', 'The Libertines', ...].
    lookup[band]            -> (Result 1 / 3) The Libertines are an English rock band, ...
    lookup[band] (at end)   -> No more results.
    lookup[x] before search -> No page loaded: use search first.
"""

from __future__ import annotations

import re
import threading

from ponder.tools.base import ToolInputError
from ponder.tools.search.corpus import Doc, fold, normalize_title
from ponder.tools.search.hits import format_hits
from ponder.tools.search.index import Mode, SearchIndex

__all__ = ["NO_MORE_RESULTS", "NO_PAGE", "SearchSession", "clean_input"]

PAGE_SENTENCES = 5  # sentences shown by search, as in wikienv
PAGE_CHARS = 500  # ... but no more than about this many characters
SIMILAR = 5  # titles listed when there is no close match
CANDIDATES = 5  # top hits considered for an unambiguous title containing every word of the entity
NO_MORE_RESULTS = "No more results."
NO_PAGE = "No page loaded: use search first."

_WRAPPED = re.compile(r"^(?:search|lookup|retrieve)?\s*\[(.*)\]$", re.IGNORECASE | re.DOTALL)


def clean_input(text: str) -> str:
    """Strip what models wrap around an argument: quotes, ``[...]`` and ``Search[...]``."""
    s = " ".join(text.split())
    for _ in range(3):
        match = _WRAPPED.match(s)
        if match:
            s = match.group(1).strip()
        elif len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'`":
            s = s[1:-1].strip()
        else:
            break
    return s


def page_summary(doc: Doc) -> str:
    """The first sentences of a page: up to 5, and past the first no more than about 500 characters."""
    if not doc.sentences:
        return doc.text.strip() or f"[{doc.title}] has no text."
    shown: list[str] = []
    size = 0
    for sentence in doc.sentences[:PAGE_SENTENCES]:
        if shown and size + 1 + len(sentence) > PAGE_CHARS:
            break
        shown.append(sentence)
        size += len(sentence) + (1 if size else 0)
    return " ".join(shown)


class SearchSession:
    """One agent run's search state over a shared :class:`SearchIndex`.

    Args:
        index: The (process-wide) index of the corpus.
        mode: Retrieval for similar titles and ``retrieve``: ``bm25``, ``dense`` or ``hybrid``.
        k: Results returned by :meth:`retrieve`.

    Attributes:
        page: The page the last successful ``search`` loaded (``None`` before).
    """

    def __init__(self, index: SearchIndex, mode: Mode = "bm25", k: int = 5) -> None:
        self.index = index
        self.mode: Mode = mode
        self.k = k
        self.page: Doc | None = None
        self._keyword: str | None = None
        self._matches: list[str] = []
        self._cursor = 0
        self._lock = threading.Lock()

    def _load(self, doc: Doc) -> str:
        self.page = doc
        self._keyword, self._matches, self._cursor = None, [], 0
        return page_summary(doc)

    def _unique_containing(self, entity: str, ranked: list[int]) -> int | None:
        """The only top hit whose title contains every word of ``entity`` (``Milhouse`` -> ``Milhouse Van Houten``)."""
        words = set(normalize_title(entity).split())
        if not words:
            return None
        docs = self.index.corpus.docs
        found = [i for i in ranked[:CANDIDATES] if words <= set(normalize_title(docs[i].title).split())]
        return found[0] if len(found) == 1 else None

    def search(self, entity: str) -> str:
        """The ReAct ``search[entity]`` action.

        Returns:
            The first sentences of the matching page (an exact or normalised title match, the only
            page titled ``entity (...)``, or the only top hit whose title contains every word of the
            entity), else ``Could not find [entity]. Similar: ['title', ...].`` with up to 5 titles.

        Raises:
            ToolInputError: for an empty entity.
        """
        entity = clean_input(entity)
        if not entity:
            raise ToolInputError("search needs an entity, e.g. a person, place or thing to look up.")
        docs = self.index.corpus.docs
        with self._lock:
            kind, matches = self.index.corpus.title_matches(entity)
            if len(matches) == 1 or (matches and kind != "base"):  # same normalised title twice: take the first
                return self._load(docs[matches[0]])
            ranked = [i for i, _ in self.index.ranked(entity, max(SIMILAR, CANDIDATES), self.mode)]
            if not matches and (best := self._unique_containing(entity, ranked)) is not None:
                return self._load(docs[best])
            order = sorted(matches, key=lambda i: ranked.index(i) if i in ranked else len(ranked) + i)
            order += [i for i in ranked if i not in order]
            titles = [docs[i].title for i in order[:SIMILAR]]
            return f"Could not find [{entity}]. Similar: {titles!r}."

    def lookup(self, keyword: str) -> str:
        """The ReAct ``lookup[keyword]`` action on the current page.

        The same keyword again moves to the next matching sentence; a new keyword (or a new search)
        starts over. Matching is a case- and accent-insensitive substring test.

        Returns:
            ``(Result i / n) sentence``, then ``No more results.``; ``No page loaded: use search first.``
            before any successful search.

        Raises:
            ToolInputError: for an empty keyword.
        """
        keyword = clean_input(keyword)
        if not keyword:
            raise ToolInputError("lookup needs a keyword to find in the current page.")
        with self._lock:
            if self.page is None:
                return NO_PAGE
            if keyword != self._keyword:
                needle = fold(keyword)
                self._keyword = keyword
                self._matches = [s for s in self.page.sentences if needle in fold(s)]
                self._cursor = 0
            if self._cursor >= len(self._matches):
                return NO_MORE_RESULTS
            self._cursor += 1
            return f"(Result {self._cursor} / {len(self._matches)}) {self._matches[self._cursor - 1]}"

    def retrieve(self, query: str, k: int | None = None) -> str:
        """The top-``k`` passages for ``query``: ``1. Title — snippet`` per line, best first.

        Returns:
            The numbered results, or ``No results for [query].`` when no document matches.

        Raises:
            ToolInputError: for an empty query.
        """
        query = clean_input(query)
        if not query:
            raise ToolInputError("retrieve needs a query.")
        hits = self.index.search(query, k or self.k, self.mode)
        return format_hits(hits) if hits else f"No results for [{query}]."
