"""Cancellation of in-flight model calls: a :class:`CancelToken` and the scope that makes it current.

A caller that may give up on a model call (the chat on Ctrl-C, self-consistency dropping a sample that can no
longer change the vote) runs the call inside :func:`cancel_scope`; a backend that can stop early (the llama.cpp
engine frees the sequence's slot at once) registers with :func:`current_token` and, once the token is
cancelled, ends the call with :class:`~ponder.core.errors.GenerationCancelled`. The scope is a context variable,
so it follows the code into the model call on the same thread (LangGraph runs each branch in its own copy of the
context).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current: ContextVar[CancelToken | None] = ContextVar("ponder_cancel_token", default=None)


class CancelToken:
    """A one-way flag with callbacks: once :meth:`cancel` is called it stays cancelled."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel (idempotent): every registered callback runs once, on this thread."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` when the token is cancelled (at once if it already is); return an unregister function."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)

                def unregister() -> None:
                    with self._lock:
                        if callback in self._callbacks:
                            self._callbacks.remove(callback)

                return unregister
        callback()
        return lambda: None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled or ``timeout`` seconds passed; return whether it is cancelled."""
        return self._event.wait(timeout)


def current_token() -> CancelToken | None:
    """The token of the innermost :func:`cancel_scope` on this thread's context, if any."""
    return _current.get()


@contextmanager
def cancel_scope(token: CancelToken) -> Iterator[CancelToken]:
    """Make ``token`` the current one for the calls made inside the ``with`` block."""
    reset = _current.set(token)
    try:
        yield token
    finally:
        _current.reset(reset)
