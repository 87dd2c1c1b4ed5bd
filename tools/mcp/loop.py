"""One background thread running an asyncio event loop, so synchronous tools can drive the async MCP SDK."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread, started at first use and stoppable (a later use starts a new one).

    Every MCP session of the process lives on this loop: a session's transport tasks must stay on the loop
    that opened them, and one thread for all servers keeps the process light.
    """

    def __init__(self, name: str = "ponder-mcp") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop (starting it if needed) and return its future."""
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop())

    def call_soon(self, fn: Any, *args: Any) -> None:
        """Run the plain callable ``fn(*args)`` on the loop's thread (no-op when the loop is not running)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def in_loop_thread(self) -> bool:
        """Whether the caller is the loop's own thread (it must never wait on the loop)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the loop and join its thread (at most ``timeout`` seconds); pending tasks are dropped."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=_serve_forever, args=(loop, started), name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._loop, self._thread = loop, thread
            return self._loop


def _serve_forever(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        loop.close()
