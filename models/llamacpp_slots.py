"""Sequence slots of the llama.cpp engine, and one request's decoding state.

A :class:`Slot` is one llama.cpp sequence id of the engine's context, with its own KV stream (``kv_unified`` is
off, see :mod:`ponder.models.llamacpp_engine`). It remembers the tokens whose KV cells it holds (``tokens``), so
the next request with the same prefix evaluates only the rest.

:class:`EngineRequest` is a submitted request as its caller sees it, :class:`Live` one admitted request while it
decodes: its random generator (seeded by the request alone, so its
text never depends on what else runs), optional grammar state, stop handling and streamed text.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ponder.models.base import Completion, GenerationParams, StopFilter, completion_from_pieces, stop_in_tail
from ponder.models.llamacpp_decode import pick_token

if TYPE_CHECKING:
    from ponder.models.llamacpp_engine import Engine


@dataclass
class Slot:
    """One sequence id of the engine's context and the cells it holds.

    Attributes:
        seq_id: The llama.cpp sequence id (and KV stream).
        tokens: The tokens whose KV cells the slot holds, in position order.
        busy: Whether a request is decoding on it.
        last_used: Engine turn at which it was last released (the least recently used idle slot is reused first).
    """

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: int = 0


@dataclass
class Live:
    """One admitted request while it is evaluated and decoded.

    Attributes:
        prompt: The prompt tokens.
        params: Sampling parameters (temperature, top-p, stops, grammar, ...).
        budget: Most tokens to generate (``max_tokens``, capped by the context room).
        rng: The request's own generator (``numpy.random.default_rng(seed)``).
        grammar: The request's grammar state, or ``None``.
        todo: Tokens still to evaluate (the prompt's unevaluated suffix, then each sampled token).
        pos: Position of ``todo[0]``.
        on_text: Receives the text that became safe to show (streaming), or ``None``.
        score_ids: Token ids to score at the prompt's last position instead of sampling (``None``: generate).
    """

    prompt: list[int]
    params: GenerationParams
    budget: int
    rng: np.random.Generator
    grammar: Any = None
    todo: list[int] = field(default_factory=list)
    pos: int = 0
    on_text: Callable[[str], None] | None = None
    pieces: list[bytes] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    logprobs: list[float] = field(default_factory=list)
    hit_end: bool = False
    generating: bool = False
    stops: list[str] = field(default_factory=list)
    shown: StopFilter | None = None
    decoder: Any = None
    score_ids: list[int] | None = None

    def __post_init__(self) -> None:
        self.stops = [s for s in self.params.stop if s]
        if self.on_text is not None:
            self.shown = StopFilter(self.params.stop)
            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")

    def pick(self, logits: np.ndarray) -> tuple[int, float]:
        """Draw the next token from ``logits`` (grammar-constrained when the request has a grammar)."""
        if self.grammar is not None:
            return self.grammar.pick(logits, self.params, self.rng)  # type: ignore[no-any-return]
        return pick_token(logits, self.params, self.rng)

    def score(self, logits: np.ndarray) -> list[float]:
        """The log-softmax of ``logits`` (float64) at :attr:`score_ids`."""
        assert self.score_ids is not None
        top = float(logits.max())
        logsum = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
        return [float(logits[i]) - logsum for i in self.score_ids]

    def take(self, token: int, logprob: float, piece: bytes, end: bool) -> bool:
        """Record a sampled token; return whether the request is finished (it is then not to be evaluated)."""
        if end:
            self.hit_end = True
            return True
        if self.grammar is not None:
            self.grammar.accept(token)
        self.logprobs.append(logprob)
        self.pieces.append(piece)
        self.text += piece
        if self.shown is not None:
            self._show(self.shown.feed(self.decoder.decode(piece)))
        if (self.stops and stop_in_tail(self.text, len(piece), self.stops)) or len(self.pieces) >= self.budget:
            return True
        self.todo = [token]
        self.generating = True
        return False

    def _show(self, delta: str) -> None:
        if delta and self.on_text is not None:
            self.on_text(delta)

    def completion(self) -> Completion:
        """The finished completion (flushes the text held back from the stream)."""
        if self.shown is not None and not self.shown.stopped:
            self._show(self.shown.feed(self.decoder.decode(b"", final=True)) + self.shown.finish())
        return completion_from_pieces(self.pieces, self.params.stop, hit_end=self.hit_end,
                                      prompt_tokens=len(self.prompt),
                                      logprobs=self.logprobs if self.params.logprobs else None)

    def close(self) -> None:
        """Free the grammar state."""
        if self.grammar is not None:
            self.grammar.close()
            self.grammar = None


class EngineRequest:
    """One submitted generation: wait for it with :meth:`result`, give up with :meth:`cancel`."""

    def __init__(self, engine: Engine, prompt: list[int], params: GenerationParams, seed: int | None,
                 on_text: Callable[[str], None] | None, cache: Any) -> None:
        self.prompt = prompt
        self.cache = cache
        self.params = params
        self.seed = seed
        self.on_text = on_text
        #: What evaluating the prompt took: tokens reused in the slot, copied from another slot, restored from
        #: the prompt cache, evaluated (set when the prompt is in the slot).
        self.prefill: dict[str, int] = {}
        #: Token ids to score instead of sampling, and their log-probabilities once done (see ``Engine.submit``).
        self.score_ids: list[int] | None = None
        self.scores: list[float] | None = None
        self._engine = engine
        self._done = threading.Event()
        self._completion: Completion | None = None
        self._error: BaseException | None = None
        self.cancelled = False
        # engine-thread state
        self.live: Live | None = None
        self.slot: Slot | None = None
        self.donor: EngineRequest | None = None
        self.expect = 0
        self.attached = False

    def result(self, timeout: float | None = None) -> Completion:
        """Wait for the completion.

        Raises:
            TimeoutError: when it is not done after ``timeout`` seconds.
            GenerationCancelled: when the request was cancelled.
            ModelError: when the request failed (its prompt cannot fit, a bad grammar, llama.cpp failed).
        """
        if not self._done.wait(timeout):
            raise TimeoutError(f"the generation is not done after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._completion is not None
        return self._completion

    def cancel(self) -> None:
        """Stop decoding it (its slot is free at the engine's next turn); :meth:`result` then raises."""
        if not self._done.is_set():
            self.cancelled = True
            self._engine.wake()

    def done(self) -> bool:
        """Whether the request finished (completed, failed or cancelled)."""
        return self._done.is_set()

    def _finish(self, completion: Completion | None, error: BaseException | None) -> None:
        self._completion, self._error = completion, error
        self._done.set()
