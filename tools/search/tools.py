"""The ReAct search tools: ``search``, ``lookup`` and ``retrieve``, sharing one :class:`SearchSession`.

``search_tools(settings)`` returns fresh tools with a new session on every call (one per agent run),
over the corpus index that is loaded once per process.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ponder.core.settings import SearchSettings
from ponder.tools.base import Tool
from ponder.tools.search.index import SearchIndex, get_index
from ponder.tools.search.session import SearchSession

__all__ = ["LookupTool", "RetrieveTool", "SearchTool", "search_tools"]


class SearchArgs(BaseModel):
    """Arguments of ``search``."""

    entity: str = Field(description="The title of a page to open, e.g. Colorado orogeny")


class LookupArgs(BaseModel):
    """Arguments of ``lookup``."""

    keyword: str = Field(description="A word or phrase to find in the current page, e.g. eastern sector")


class RetrieveArgs(BaseModel):
    """Arguments of ``retrieve``."""

    query: str = Field(description="Free-text search query, e.g. Colorado orogeny eastern sector elevation")


class SearchTool:
    """``search[entity]``: open the page about an entity, or list similar titles."""

    name = "search"
    description = (
        "Opens the page whose title matches the entity and returns its first sentences; when no title matches, "
        "returns 'Could not find [entity]. Similar: [...]' with titles you can search next. "
        "Example input: Colorado orogeny"
    )
    args_schema: type[BaseModel] = SearchArgs

    def __init__(self, session: SearchSession) -> None:
        self.session = session

    def run(self, args: BaseModel) -> str:
        """Search for ``args.entity``."""
        return self.session.search(args.entity)  # type: ignore[attr-defined]


class LookupTool:
    """``lookup[keyword]``: the next sentence of the current page that contains the keyword."""

    name = "lookup"
    description = (
        "Returns the next sentence containing the keyword in the page last opened with search, as "
        "'(Result i / n) sentence'; repeat the same keyword for the next one. Example input: eastern sector"
    )
    args_schema: type[BaseModel] = LookupArgs

    def __init__(self, session: SearchSession) -> None:
        self.session = session

    def run(self, args: BaseModel) -> str:
        """Look up ``args.keyword`` in the current page."""
        return self.session.lookup(args.keyword)  # type: ignore[attr-defined]


class RetrieveTool:
    """``retrieve[query]``: the top-k passages for a free-text query."""

    name = "retrieve"
    description = (
        "Full-text search: returns the best-matching pages for a query as numbered lines "
        "'1. Title — snippet'. Example input: mountain building episode in Colorado"
    )
    args_schema: type[BaseModel] = RetrieveArgs

    def __init__(self, session: SearchSession) -> None:
        self.session = session

    def run(self, args: BaseModel) -> str:
        """Retrieve the top-k passages for ``args.query``."""
        return self.session.retrieve(args.query)  # type: ignore[attr-defined]


def search_tools(settings: SearchSettings, index: SearchIndex | None = None) -> list[Tool]:
    """The ``search``, ``lookup`` and ``retrieve`` tools of one agent run.

    Args:
        settings: ``search_corpus`` / ``data_dir`` (the corpus), ``search_mode``, ``search_k`` and
            ``cache_dir`` (where the index is cached).
        index: Use this index instead of the settings' corpus (tests, custom corpora).

    Returns:
        Three fresh tools sharing one new :class:`SearchSession`.

    Raises:
        DataError: when the corpus is missing or malformed.
        MissingExtraError: for ``search_mode`` dense or hybrid without the ``embeddings`` extra.
    """
    session = SearchSession(index or get_index(settings), mode=settings.search_mode, k=settings.search_k)
    return [SearchTool(session), LookupTool(session), RetrieveTool(session)]
