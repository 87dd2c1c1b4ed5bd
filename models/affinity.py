"""Request affinity: which session (an eval episode, a ``ponder run``) a model request belongs to.

A backend that spreads requests over several servers (:mod:`ponder.models.openai_pool`) keeps one session's
requests on one server, so that server's prefix cache is reused across the session's steps. The key is a
context variable: the evaluation runner sets it around each episode (:func:`ponder.envs.workers.play`), and
LangGraph carries it into the threads it fans out to. Backends that run one model ignore it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_SESSION: ContextVar[str | None] = ContextVar("ponder_model_session", default=None)


def session_key() -> str | None:
    """The current session's key, or ``None`` outside any session."""
    return _SESSION.get()


@contextmanager
def model_session(key: str) -> Iterator[None]:
    """Run the block as session ``key``: its model requests prefer one server.

    Args:
        key: Any stable id (an episode id, a run id).
    """
    token = _SESSION.set(key)
    try:
        yield
    finally:
        _SESSION.reset(token)
