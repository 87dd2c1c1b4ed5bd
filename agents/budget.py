"""The context budget: fit each prompt into the backend's context window instead of failing on length.

Before every model call the kernel asks :func:`fit_prompt` for the messages to send. When
``model.count_tokens(prompt) + params.max_tokens`` exceeds ``model.capabilities.context_window`` (``None``:
unbounded, nothing is counted), the oldest turns are elided (an observation and the reply it answered), keeping
the prompt prefix (system prompt, few-shot turns), the first turn (the question or first observation) and the
latest turns; one line appended to the first turn says how many observations were elided. When even that prompt
leaves too little room, the call's ``max_tokens`` is lowered to what is left, down to
:data:`MIN_COMPLETION_TOKENS`. Nothing here raises for length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.memory.nodes import compose
from ponder.models.base import GenerationParams, Message, ModelBackend

#: The latest observations that are never elided.
KEEP_LAST_OBSERVATIONS = 2
#: ``max_tokens`` is never lowered below this.
MIN_COMPLETION_TOKENS = 16
#: The roles of observation turns: the text protocol's user turns, native tool calling's tool results.
OBSERVATION_ROLES = ("user", "tool")
#: The line appended to the first turn when observations were elided.
ELIDED_NOTE = "({n} earlier observation(s) and the replies before them were elided to fit the context window.)"


@dataclass(frozen=True)
class FittedPrompt:
    """What to send: the messages, the parameters and how many observations were elided."""

    messages: list[Message]
    params: GenerationParams
    elided: int = 0


def elide(history: Sequence[Message], count: int) -> list[Message]:
    """``history`` without its ``count`` oldest observations (and the replies before them), noted in the first turn."""
    if count <= 0 or not history:
        return list(history)
    first, rest = history[0], history[1:]
    seen, cut = 0, 0
    for i, message in enumerate(rest):
        if message["role"] in OBSERVATION_ROLES:
            seen += 1
            if seen == count:
                cut = i + 1
                break
    note: Message = {"role": first["role"], "content": f"{first['content']}\n\n{ELIDED_NOTE.format(n=count)}"}
    return [note, *rest[cut:]]


def elidable(history: Sequence[Message], keep_last: int = KEEP_LAST_OBSERVATIONS) -> int:
    """How many observations of ``history`` may be elided (all after the first turn but the last ``keep_last``)."""
    observations = sum(1 for m in history[1:] if m["role"] in OBSERVATION_ROLES)
    return max(0, observations - keep_last)


def fit_prompt(model: ModelBackend, prefix: Sequence[Message], history: Sequence[Message], lessons: str | None,
               params: GenerationParams) -> FittedPrompt:
    """The prompt of the next model call, fitted into ``model``'s context window.

    Args:
        model: The backend (its ``capabilities.context_window`` and ``count_tokens``).
        prefix: System prompt and few-shot turns (never elided).
        history: The run's turns, the question (or first observation) first.
        lessons: Reflexion lessons put in front of the first turn, or ``None``.
        params: The call's parameters (``max_tokens`` is the room kept for the reply).
    """
    window = model.capabilities.context_window
    messages = compose(prefix, history, lessons)
    if window is None or model.count_tokens(messages) + params.max_tokens <= window:
        return FittedPrompt(messages, params)
    budget = window - params.max_tokens
    low, high, best = 1, elidable(history), None
    while low <= high:  # the fewest elided observations that fit (binary search: fewer counts on long runs)
        mid = (low + high) // 2
        candidate = compose(prefix, elide(history, mid), lessons)
        if model.count_tokens(candidate) <= budget:
            best, high = FittedPrompt(candidate, params, mid), mid - 1
        else:
            low = mid + 1
    if best is not None:
        return best
    count = elidable(history)
    smallest = compose(prefix, elide(history, count), lessons)
    room = max(MIN_COMPLETION_TOKENS, min(params.max_tokens, window - model.count_tokens(smallest)))
    return FittedPrompt(smallest, params.model_copy(update={"max_tokens": room}), count)
