"""Search results and their rendering for the model."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Hit", "format_hits", "snippet"]

SNIPPET_CHARS = 200


@dataclass(frozen=True)
class Hit:
    """One search result, local or from the web.

    Attributes:
        title: The page title.
        text: The paragraph (local) or the result summary (web).
        score: The retriever's score (higher is better; not comparable across retrievers).
        id: The corpus document id (local results).
        url: The page address (web results).
    """

    title: str
    text: str
    score: float = 0.0
    id: str | None = None
    url: str | None = None


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters plus ``…``."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def format_hits(hits: list[Hit], limit: int = SNIPPET_CHARS) -> str:
    """Numbered results, one per line: ``1. Title — snippet`` (plus `` <url>`` for web results)."""
    lines = []
    for i, hit in enumerate(hits, start=1):
        line = f"{i}. {hit.title} — {snippet(hit.text, limit)}"
        if hit.url:
            line += f" <{hit.url}>"
        lines.append(line)
    return "\n".join(lines)
