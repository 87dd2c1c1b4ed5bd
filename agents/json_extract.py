"""Find the JSON value in a model's reply: bare JSON, a fenced code block, or JSON after (or inside) prose."""

from __future__ import annotations

import json
import re
from typing import Any

#: A fenced code block (```json ... ``` or ``` ... ```): its body.
FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\n?(.*?)```", re.S)
#: Where a JSON object or array may begin inside prose.
OPENERS = re.compile(r"[\[{]")


def extract_json(text: str) -> Any:
    """The JSON value of ``text``.

    Tried in order: the whole text; the body of each fenced code block; the longest JSON object or array that
    starts at a ``{`` or ``[`` inside the text (leading prose, trailing remarks and a ``[1]``-style citation
    before the object are passed over).

    Raises:
        ValueError: when the text holds no JSON value (the message says what was seen).
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError("the reply is empty")
    for candidate in [stripped, *(m.group(1).strip() for m in FENCE.finditer(text))]:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    found = _longest_embedded(text)
    if found is not None:
        return found[0]
    preview = stripped if len(stripped) <= 80 else stripped[:77] + "..."
    raise ValueError(f"no JSON value in the reply: {preview!r}")


def _longest_embedded(text: str) -> tuple[Any, int] | None:
    """The longest JSON object/array starting at an opener in ``text``, with its length; ``None``: none."""
    decoder = json.JSONDecoder()
    best: tuple[Any, int] | None = None
    covered = -1
    for match in OPENERS.finditer(text):
        start = match.start()
        if start < covered:  # inside a value already decoded: its parts are shorter
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        covered = end
        if best is None or end - start > best[1]:
            best = (value, end - start)
    return best
