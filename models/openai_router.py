"""Which server of a pool takes the next request: session affinity, least in flight, ejection and backoff.

The router only keeps the books (thread-safe); :mod:`ponder.models.openai_pool` sends the requests. The rules:

* A request of a session (:func:`ponder.models.affinity.session_key`) whose server is healthy goes there, so the
  server's prefix cache is reused across the session's steps (a bounded LRU map of sessions).
* Otherwise a server whose backoff is over gets the request as its probe (one at a time); else the healthy server
  with the fewest requests in flight (ties rotate).
* A server that failed (connection, timeout, a retried status) is taken out for a backoff that starts at
  :data:`BACKOFF_START_S` and doubles per failed probe up to :data:`BACKOFF_MAX_S`; a probe that gets any answer
  brings it back. The failed request's session forgets its server (it moves with the retry).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

#: The first backoff of a server taken out, in seconds.
BACKOFF_START_S = 1.0
#: The longest backoff, in seconds.
BACKOFF_MAX_S = 60.0
#: Sessions remembered (least recently used forgotten first).
MAX_SESSIONS = 4096
#: How long to wait when every server is out but some probe is still running, in seconds.
PROBE_POLL_S = 0.2


def start_turn(n: int) -> int:
    """Where a new router's rotation among tied servers starts: a random one of ``n``.

    Many processes with a pool of their own (the shards of a Ray run, each with few workers) would otherwise all
    send their first episode -- and, running in step, their k-th -- to the same server.
    """
    return random.randrange(n) if n else 0


@dataclass
class ServerState:
    """The books of one server.

    Attributes:
        url: The server's base URL.
        in_flight: Requests sent and not yet answered.
        requests: Requests sent (answered or not).
        failures: Requests that failed through the server's fault.
        ejections: Times the server was taken out.
        down_until: ``time.monotonic()`` at which an ejected server may be probed; ``None`` while healthy.
        backoff: The current backoff in seconds (``0`` while healthy).
        probing: Whether a probe request is on its way.
        last_error: The last failure's message.
    """

    url: str
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    ejections: int = 0
    down_until: float | None = None
    backoff: float = 0.0
    probing: bool = False
    last_error: str = ""

    def counts(self, sessions: int = 0) -> dict[str, Any]:
        """The counts for ``load_info`` (``sessions``: how many sessions are tied to the server)."""
        return {"url": self.url, "healthy": self.down_until is None, "in_flight": self.in_flight, "sessions": sessions,
                "requests": self.requests, "failures": self.failures, "ejections": self.ejections,
                "last_error": self.last_error}


@dataclass(frozen=True)
class Lease:
    """One request's use of a server (given back with :meth:`Router.release`)."""

    index: int
    probe: bool
    session: str | None = None


@dataclass
class Router:
    """The routing books of a pool of ``urls`` (see the module docstring).

    Args:
        urls: The servers' base URLs, in order.
        clock: The time source (``time.monotonic``; tests may pass their own).
    """

    urls: list[str]
    clock: Any = time.monotonic
    servers: list[ServerState] = field(init=False)

    def __post_init__(self) -> None:
        self.servers = [ServerState(url) for url in self.urls]
        self._sessions: OrderedDict[str, int] = OrderedDict()
        self._turn = itertools.count(start_turn(len(self.urls)))
        self._lock = threading.Lock()

    def acquire(self, session: str | None) -> Lease | None:
        """Pick the server for one request of ``session`` and count it in flight; ``None`` when all are out."""
        with self._lock:
            now = self.clock()
            index, probe = self._pick(session, now)
            if index is None:
                return None
            server = self.servers[index]
            server.in_flight += 1
            server.requests += 1
            server.probing = server.probing or probe
            return Lease(index, probe, session)

    def _pick(self, session: str | None, now: float) -> tuple[int | None, bool]:
        if session is not None and session in self._sessions:
            index = self._sessions[session]
            if self.servers[index].down_until is None:
                self._sessions.move_to_end(session)
                return index, False
        due = [i for i, s in enumerate(self.servers)
               if s.down_until is not None and not s.probing and s.down_until <= now]
        if due:
            return due[0], True
        healthy = [i for i, s in enumerate(self.servers) if s.down_until is None]
        if not healthy:
            return None, False
        fewest = min(self.servers[i].in_flight for i in healthy)
        tied = [i for i in healthy if self.servers[i].in_flight == fewest]
        return tied[next(self._turn) % len(tied)], False

    def release(self, lease: Lease, error: str | None = None) -> bool:
        """Count the request answered: ``error`` is the message of a failure through the server's fault.

        A success (any answer, 4xx included) ties the session to the server and brings a probed server back; a
        failure takes a healthy server out (or doubles a failed probe's backoff) and unties the session.

        Returns:
            Whether this failure took the server out (it was healthy until now).
        """
        with self._lock:
            server = self.servers[lease.index]
            server.in_flight -= 1
            if lease.probe:
                server.probing = False
            if error is None:
                if lease.probe:
                    server.down_until, server.backoff = None, 0.0
                if lease.session is not None and server.down_until is None:
                    self._remember(lease.session, lease.index)
                return False
            server.failures += 1
            server.last_error = error
            if lease.session is not None and self._sessions.get(lease.session) == lease.index:
                del self._sessions[lease.session]
            if server.down_until is None:
                server.ejections += 1
                server.backoff = BACKOFF_START_S
                server.down_until = self.clock() + server.backoff
                return True
            if lease.probe:
                server.backoff = min(server.backoff * 2, BACKOFF_MAX_S)
                server.down_until = self.clock() + server.backoff
            return False

    def _remember(self, session: str, index: int) -> None:
        self._sessions[session] = index
        self._sessions.move_to_end(session)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    def wait_s(self) -> tuple[float, bool]:
        """How long to wait before a server may take a request, and whether the wait is for a backoff.

        ``(0, True)`` when one is free now; a wait only for another request's probe is not a backoff (``False``).
        """
        with self._lock:
            now = self.clock()
            if any(s.down_until is None for s in self.servers):
                return 0.0, True
            waiting = [s.down_until - now for s in self.servers if s.down_until is not None and not s.probing]
            if not waiting:
                return PROBE_POLL_S, False
            return max(0.0, min(waiting)), True

    def session_server(self, session: str) -> str | None:
        """The URL of the server ``session`` is tied to, if any (for tests and logs)."""
        with self._lock:
            index = self._sessions.get(session)
            return None if index is None else self.servers[index].url

    def down_message(self) -> str:
        """Every server with its last error, for the error raised when all are out."""
        with self._lock:
            return "; ".join(f"{s.url}: {s.last_error or 'no answer yet'}" for s in self.servers)

    def counts(self) -> list[dict[str, Any]]:
        """Per-server counts (requests, failures, ejections, sessions tied, ...)."""
        with self._lock:
            tied = [0] * len(self.servers)
            for index in self._sessions.values():
                tied[index] += 1
            return [s.counts(n) for s, n in zip(self.servers, tied, strict=True)]
