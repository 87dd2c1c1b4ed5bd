"""Samples in flight: each sample's cancel token, the vote re-checked as each sample ends, the rest cancelled.

The graph's ``tally`` node only runs once every branch of a wave has returned (a LangGraph superstep), so a
vote that settles while samples are still running is noticed here instead: every ``sample`` branch takes a
:class:`~ponder.models.cancel.CancelToken` from :meth:`InFlight.start` and runs inside its scope, and reports
its record to :meth:`InFlight.finish`, which re-checks the stop rule counting every unfinished sample (in
flight or not launched) as remaining. Once the vote is settled, the tokens of the samples still running are
cancelled: a backend that can stop early (the llama.cpp engine) ends their model calls with
:class:`~ponder.core.errors.GenerationCancelled` and frees their slots at once; a sample that has not started
gets a cancelled token and returns at once. Their records come back marked ``discarded`` and never vote.

A cancelled outer scope (the caller's token, e.g. the chat's Ctrl-C) cancels every sample too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ponder.graphs.self_consistency.records import SampleRecord
from ponder.models.cancel import CancelToken

#: ``(voters, remaining, first_pending) -> settled``: the stop rule over the samples counted so far.
SettleRule = Callable[[list[SampleRecord], int, int], bool]


class InFlight:
    """The running samples of one vote (thread-safe: branches call it from their threads).

    Args:
        total: Samples planned (every one not counted yet is remaining for the stop rule).
        settles: The stop rule (``False`` when early stopping is off).

    Attributes:
        stopped: ``"settled"`` once the stop rule held with samples unfinished, ``"cancelled"`` once the outer
            scope was cancelled; ``None`` otherwise.
    """

    def __init__(self, total: int, settles: SettleRule) -> None:
        self.total = total
        self.stopped: str | None = None
        self._settles = settles
        self._lock = threading.Lock()
        self._tokens: dict[int, CancelToken] = {}
        self._unlink: dict[int, Callable[[], None]] = {}
        self._counted: list[SampleRecord] = []

    def start(self, index: int, parent: CancelToken | None = None) -> CancelToken:
        """The token sample ``index`` runs under: already cancelled when the vote is settled; linked to ``parent``."""
        token = CancelToken()
        with self._lock:
            self._tokens[index] = token
            stopped = self.stopped is not None
        if stopped:
            token.cancel()
        elif parent is not None:
            unlink = parent.on_cancel(lambda: self._cancel_all("cancelled"))
            with self._lock:
                self._unlink[index] = unlink
        return token

    def finish(self, record: SampleRecord) -> None:
        """Count ``record`` (unless discarded) and cancel the unfinished samples if the vote is now settled."""
        with self._lock:
            self._tokens.pop(record.index, None)
            unlink = self._unlink.pop(record.index, None)
            if not record.discarded:
                self._counted.append(record)
            counted = list(self._counted)
        if unlink is not None:
            unlink()
        remaining = self.total - len(counted)
        if record.discarded or remaining <= 0 or self.stopped is not None:
            return
        done = {r.index for r in counted}
        first_pending = min(i for i in range(self.total + len(done)) if i not in done)
        if self._settles(counted, remaining, first_pending):
            self._cancel_all("settled")

    def _cancel_all(self, reason: str) -> None:
        with self._lock:
            if self.stopped is None:
                self.stopped = reason
            tokens = list(self._tokens.values())
        for token in tokens:
            token.cancel()
