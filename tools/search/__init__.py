"""Offline search over a JSONL corpus (BM25, optional dense / hybrid) and the ReAct search tools.

Modules, one concept each:

* :mod:`.corpus` -- reading the JSONL corpus, sentences, title matching.
* :mod:`.cache` -- the atomic, verified on-disk cache of built indexes.
* :mod:`.bm25` -- the BM25 index (``bm25s``). :mod:`.dense` -- embeddings (sentence-transformers).
* :mod:`.index` -- one corpus' indexes, shared per process; hybrid = reciprocal-rank fusion.
* :mod:`.session` -- one agent run's ``search`` / ``lookup`` / ``retrieve`` state (ReAct wikienv).
* :mod:`.tools` -- the tools: ``search_tools(settings)``. :mod:`.web` -- pluggable web search.

Names are imported lazily, so ``import ponder.tools.search`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Corpus": "corpus", "Doc": "corpus", "load_corpus": "corpus",
    "BM25Index": "bm25", "DenseIndex": "dense", "Hit": "hits",
    "SearchIndex": "index", "get_index": "index", "load_index": "index", "clear_index_cache": "index",
    "SearchSession": "session",
    "SearchTool": "tools", "LookupTool": "tools", "RetrieveTool": "tools", "search_tools": "tools",
    "WebSearchBackend": "web", "DuckDuckGoBackend": "web", "WebSearchTool": "web",
    "WebSearchUnavailableError": "web",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
