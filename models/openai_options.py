"""Next-token option scores from an OpenAI-compatible server (``logprobs`` + ``top_logprobs``).

The server's tokenizer is not at hand, so an option is matched by text: a token of the first position's top list
counts for the option it spells the start of (leading whitespace ignored: ``" yes"`` and ``"yes"`` both count for
``yes``, their probabilities added). A token equal to an option counts for that option only; a token that starts
several options and equals none counts for none. An option with no token in the list gets
:data:`~ponder.models.base.LOGPROB_FLOOR`: the top list (:data:`TOP_LOGPROBS` entries) holds nearly all the mass of
a confident model, so what is missing is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ponder.core.errors import ModelError
from ponder.models.base import LOGPROB_FLOOR, Message

#: Entries of the first position's top list asked for (the OpenAI API's maximum).
TOP_LOGPROBS = 20


def option_request(model: str, messages: list[Message]) -> dict[str, Any]:
    """The chat-completions arguments of one scoring request: one greedy token with its top log-probabilities."""
    return {"model": model, "messages": list(messages), "max_tokens": 1, "temperature": 0.0, "logprobs": True,
            "top_logprobs": TOP_LOGPROBS}


def first_top_logprobs(response: Any) -> list[tuple[str, float]] | None:
    """The ``(token, logprob)`` top list of the response's first generated position.

    ``None`` when the server sent none (it ignores ``logprobs``) or generated nothing.
    """
    choices = response.choices or []
    logprobs = choices[0].logprobs if choices else None
    content = logprobs.content if logprobs is not None else None
    if not content:
        return None
    first = content[0]
    top = [(str(t.token or ""), float(t.logprob)) for t in (first.top_logprobs or [])]
    if not top:  # a server that gives the chosen token only
        top = [(str(first.token or ""), float(first.logprob))]
    return top


def match_options(top: Sequence[tuple[str, float]], options: Sequence[str]) -> list[float]:
    """Each option's log-probability from a top list (see the module docstring for the matching rule)."""
    wanted = [o.lstrip() for o in options]
    if not options or any(not w for w in wanted) or len(set(wanted)) != len(wanted):
        raise ModelError(f"option_logprobs needs distinct, non-blank options, got {list(options)}")
    buckets: list[list[float]] = [[] for _ in options]
    for token, logprob in top:
        text = token.lstrip()
        if not text:
            continue
        hits = [i for i, w in enumerate(wanted) if w == text] or [i for i, w in enumerate(wanted) if w.startswith(text)]
        if len(hits) == 1:
            buckets[hits[0]].append(logprob)
    out = []
    for values in buckets:
        if not values:
            out.append(LOGPROB_FLOOR)
            continue
        top_value = max(values)
        total = top_value + math.log(sum(math.exp(v - top_value) for v in values))
        out.append(max(min(total, 0.0), LOGPROB_FLOOR))
    return out
