"""Template filters: numbers, rates with intervals, durations and shortened text (all return plain text)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def pct(value: float | None, digits: int = 1) -> str:
    """``0.125`` → ``12.5 %``; ``None`` → ``–``."""
    return "–" if value is None else f"{100 * value:.{digits}f} %"


def interval(low: float | None, high: float | None) -> str:
    """A 95 % interval as ``[4.8, 16.2]`` (percent); empty when unknown."""
    if low is None or high is None:
        return ""
    return f"[{100 * low:.1f}, {100 * high:.1f}]"


def count(value: float | int | None) -> str:
    """A count with thousands separators (``–`` when unknown)."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def seconds(value: float | None) -> str:
    """Seconds as ``0.42 s`` / ``12.3 s`` / ``4 min 05 s``."""
    if value is None:
        return "–"
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


FILTERS: dict[str, Callable[..., str]] = {"pct": pct, "interval": interval, "count": count, "seconds": seconds,
                                          "number": number, "short": short}


def qlink(query: Any, **changes: Any) -> str:
    """The query string of ``query`` (an :class:`~ponder.viewer.episodes.EpisodeQuery`) with ``changes``.

    Defaults are left out; a change of filter or sort goes back to page 1 unless ``page`` is given.
    """
    from urllib.parse import urlencode

    fields = {"status": query.status, "failure": query.failure, "tier": query.tier, "q": query.q,
              "sort": query.sort, "desc": "1" if query.desc else "",
              "page": 1 if changes.keys() - {"page"} else query.page}
    for key, value in changes.items():
        fields[key] = ("1" if value else "") if key == "desc" else value
    kept = {k: v for k, v in fields.items() if v not in ("", None) and not (k == "page" and v == 1)
            and not (k == "sort" and v == "line")}
    return urlencode(kept)


GLOBALS: dict[str, Callable[..., str]] = {"qlink": qlink}
