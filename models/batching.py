"""``MicroBatcher``: gathers concurrent ``generate`` calls from parallel graph branches into one batch.

Self-consistency runs N agent trajectories as parallel LangGraph branches (threads). Each branch calls
``generate`` for one conversation; the batcher queues the call, and when every live branch is waiting
(or a short window has passed) it sends all queued conversations that share sampling parameters to the
backend's ``generate_batch`` as one padded batch. A backend that decodes a batch in about the time of one
sequence (transformers on CPU or GPU) then makes N samples cost far less than N runs.

It is for backends that decode explicit batches only (``capabilities.batched_decoding`` without
``continuous_batching``: transformers). A backend with continuous batching (the llama.cpp engine, an ``openai:``
server) decodes concurrent calls together by itself: the batcher passes every call straight through to it.

Limitation (batched backends only): per-call seeds cannot all be honoured inside one batch: the batch runs
with the lowest seed among its calls, so a sample's text may differ from the same sample run alone. Greedy
decoding (temperature 0) gives the same texts batched and unbatched. A continuous-batching backend honours each
call's own seed.

A call made inside a cancelled :func:`~ponder.models.cancel.cancel_scope` raises
:class:`~ponder.core.errors.GenerationCancelled` before it is queued (a batch already running is not stopped).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from ponder.core.errors import GenerationCancelled
from ponder.models.base import (
    Completion,
    GenerationParams,
    Message,
    ModelBackend,
)
from ponder.models.cancel import current_token
from ponder.models.wrapper import BackendWrapper


@dataclass
class _Request:
    messages: list[Message]
    params: GenerationParams
    future: Future[list[Completion]] = field(default_factory=Future)

    def group(self) -> str:
        return self.params.model_dump_json(exclude={"seed"})


class MicroBatcher(BackendWrapper):
    """A backend wrapper that batches concurrent single-conversation calls.

    It is a :class:`~ponder.models.base.ModelBackend` itself: ``spec``, ``backend_name``, ``real``,
    ``capabilities`` and ``load_info`` are the wrapped backend's; ``stream`` and ``count_tokens`` go to it
    unbatched.

    Args:
        backend: The model; its ``generate_batch`` receives the gathered conversations.
        window: Longest wait (seconds) for more calls before a partial batch goes.
        max_batch: Most conversations per backend call.

    Attributes:
        batches: Sizes of the batches sent so far (for records and benchmarks).
    """

    def __init__(self, backend: ModelBackend, *, window: float = 0.05, max_batch: int = 16) -> None:
        super().__init__(backend)
        self.window = window
        self.max_batch = max_batch
        self.batches: list[int] = []
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._active = 0
        self._leader = False

    # -- branch bookkeeping ---------------------------------------------------------------------------

    def enter(self, branches: int = 1) -> None:
        """``branches`` branches start: batches wait for their calls (up to the window).

        Call it before the branches start (e.g. once per wave), so the first call does not go alone.
        """
        with self._cond:
            self._active += branches

    def leave(self) -> None:
        """A branch ended: batches stop waiting for it."""
        with self._cond:
            self._active = max(0, self._active - 1)
            self._cond.notify_all()

    # -- the backend protocol (the rest is passed through: BackendWrapper) ----------------------------

    def generate(self, messages: list[Message], params: GenerationParams) -> list[Completion]:
        """Queue one call and wait for its batch (straight to a continuous backend, or for ``n > 1``).

        Whichever waiting caller finds no batch running becomes the leader: it gathers the queue (until
        every live branch waits or the window passes), runs one batch, and hands leadership back.

        Raises:
            GenerationCancelled: when the current cancel scope is already cancelled (the call is not queued).
        """
        if params.n > 1 or self.backend.capabilities.continuous_batching:
            return self.backend.generate(messages, params)
        token = current_token()
        if token is not None and token.cancelled:
            raise GenerationCancelled("the model call was cancelled before it was queued")
        request = _Request(list(messages), params)
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
            while not request.future.done():
                if self._leader:
                    self._cond.wait()
                    continue
                self._leader = True
                batch = self._collect()
                self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._leader = False
                    self._cond.notify_all()
        return request.future.result()

    # -- internals ------------------------------------------------------------------------------------

    def _collect(self) -> list[_Request]:
        """Wait (lock held, released while waiting) for the batch to fill, then take it off the queue."""
        deadline = time.monotonic() + self.window
        while (len(self._queue) < min(max(self._active, 1), self.max_batch)
               and (left := deadline - time.monotonic()) > 0):
            self._cond.wait(left)
        first = self._queue[0].group()
        batch = [r for r in self._queue if r.group() == first][: self.max_batch]
        self._queue = [r for r in self._queue if all(r is not b for b in batch)]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        seeds = [r.params.seed for r in batch if r.params.seed is not None]
        params = batch[0].params.model_copy(update={"seed": min(seeds) if seeds else None})
        self.batches.append(len(batch))
        try:
            results = self.backend.generate_batch([r.messages for r in batch], params)
        except BaseException as exc:
            for r in batch:
                r.future.set_exception(exc)
            return
        for r, completions in zip(batch, results, strict=True):
            r.future.set_result(completions)
