"""Template filters: numbers, rates with intervals, durations and shortened text (all return plain text)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from markupsafe import Markup


def pct(value: float | None, digits: int = 1) -> str:
    """``0.125`` → ``12.5 %``; ``None`` → ``–``."""
    if value is None:
        return "–"
    return f"{100 * value:.{digits}f} %" if math.isfinite(value) else str(value)


def interval(low: float | None, high: float | None) -> str:
    """A 95 % interval as ``[4.8, 16.2]`` (percent); empty when unknown."""
    if low is None or high is None:
        return ""
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def count(value: float | int | None) -> str:
    """A count with thousands separators (``–`` when unknown)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.0f}" if math.isfinite(value) else str(value)
    return f"{value:,}"


def seconds(value: float | None) -> str:
    """Seconds as ``0.42 s`` / ``12.3 s`` / ``4 min 05 s``."""
    if value is None or not math.isfinite(value):
        return "–" if value is None else str(value)
    if value < 10:
        return f"{value:.2f} s"
    if value < 120:
        return f"{value:.1f} s"
    return f"{int(value // 60)} min {int(value % 60):02d} s"


def number(value: float | None, digits: int = 2) -> str:
    """A float with ``digits`` decimals (``–`` when unknown)."""
    return "–" if value is None else f"{value:.{digits}f}"


def short(text: Any, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def qlink(query: Any, **changes: Any) -> str:
    """The query string of ``query`` (an :class:`~ponder.viewer.episodes.EpisodeQuery`) with ``changes``.

    Defaults are left out; a change of filter or sort goes back to page 1 unless ``page`` is given.
    """
    from urllib.parse import urlencode

    if changes.keys() - {"page"}:
        changes.setdefault("page", 1)
    return urlencode(query.params(**changes))


def urlpart(text: object) -> str:
    """``text`` as one URL path segment: every reserved character percent-encoded (``/``, ``?``, ``#`` too)."""
    from urllib.parse import quote

    return quote(printable(str(text)), safe="")


def printable(value: Any) -> Any:
    """What a template prints, always encodable as UTF-8.

    Lone surrogates (an undecodable file name, a JSON escape of half a character) become replacement marks, so a
    page never fails to encode; :class:`~markupsafe.Markup` stays markup.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            fixed = value.encode("utf-8", "replace").decode("utf-8")
            return type(value)(fixed) if isinstance(value, Markup) else fixed
    elif isinstance(value, PurePath):
        return printable(str(value))
    return value


GLOBALS: dict[str, Callable[..., str]] = {"qlink": qlink}

FILTERS: dict[str, Callable[..., str]] = {"pct": pct, "interval": interval, "count": count, "seconds": seconds,
                                          "number": number, "short": short, "urlpart": urlpart}
