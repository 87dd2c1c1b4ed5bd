"""The continuous-batching llama.cpp engine: one decode loop, many sequence slots, requests admitted at any time.

Like the llama.cpp server's slots: one thread owns a multi-sequence llama.cpp context and loops. Each turn builds
ONE ``llama_batch``: first the last sampled token of every generating request, then chunks of admitted requests'
unevaluated prompt suffixes fill the rest (chunked prefill inside the same ``llama_decode``). After the decode every
request whose logits are ready samples its next token; a request that ends (end of generation, a stop sequence,
``max_tokens``, its slot's room) gets its completion at once, and its slot serves the next queued request (FIFO) at
the next turn: no waves, no waiting for the slowest sequence.

Each slot has its own KV stream (``kv_unified`` off, ``kv_cells / slots`` cells each). Measured on SmolLM2: with
one unified cache, a sequence whose cells interleave with another's gets different logits (total variation up to
~3 % per token: the attention sums run over differently placed cells), so a seed's text changed with what else ran;
with a stream per slot the logits are bit-identical alone and batched (the batch's matrix products are
row-independent; other sequences' tokens in the same batch change nothing), whatever else runs and whenever it was
admitted. What did change a token's logits (max |diff| ~0.5 measured) is how its OWN sequence was batched:
llama.cpp's attention takes another kernel path when a batch holds one token of a sequence than when it holds
several, so a fresh prompt (last token evaluated with its predecessors) and a reused or copied prefix (last token
alone) gave different texts for one seed. The engine therefore always evaluates a prompt's last token alone, like
every generated token, and the rest in chunks of at least two (:func:`~ponder.models.llamacpp_turn.prompt_chunk`):
a seed gives the same text whatever else runs and whatever prefix was reused (tested).

The price of a stream per slot: a prompt prefix shared by several slots is stored (and read at every step) once
per slot; ``unified=True`` (one stream shared by all slots, the prefix's cells shared) decoded ~25-30 % more tokens
per second at 8 sequences here (SmolLM2, 1 thread, a 741-token shared prompt: ~70 against ~53 tok/s) and takes less
memory, but a request's logits then depend on where other requests' cells lie.

Prefix reuse: a request goes to the free slot whose cells share the longest prefix with its prompt; when another
slot holds a clearly longer one, that slot's stream is copied (``llama_memory_seq_cp``, one memcpy) and cut back;
a request whose prompt shares a long prefix with a prompt still being evaluated waits for it instead of evaluating
it again (self-consistency samples share the agent's system prompt). The on-disk
:class:`~ponder.models.llamacpp_prompts.PromptCache` restores a long prefix into a slot in a new process.

Sampling is per request (:class:`~ponder.models.llamacpp_slots.Live`): its own ``numpy`` generator seeded by the
request's seed and its own grammar state, so its text depends on its prompt, params and seed only.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ponder.core.errors import GenerationCancelled, ModelError
from ponder.models.base import Completion, GenerationParams
from ponder.models.llamacpp_decode import common_prefix
from ponder.models.llamacpp_slots import EngineRequest, Live, Slot
from ponder.models.llamacpp_turn import BATCH_TOKENS, MIN_SHARE, TurnMixin

logger = logging.getLogger("ponder.models")

#: llama.cpp pads KV streams to this many cells.
KV_PAD = 256


def cells_per_slot(slots: int, kv_cells: int) -> int:
    """KV cells of one slot's stream: ``kv_cells / slots``, rounded down to llama.cpp's padding (256), >= 256."""
    return max(KV_PAD, kv_cells // slots // KV_PAD * KV_PAD)


def engine_context_params(llama_cpp: Any, base: Any, slots: int, kv_cells: int, n_threads: int, *,
                          unified: bool = False) -> Any:
    """The engine context's parameters: ``base``'s (attention kernel, KV types) with one KV stream per slot.

    ``unified``: one stream shared by all slots instead.
    """
    params = llama_cpp.llama_context_default_params()
    if base is not None:
        for name, _ in type(params)._fields_:
            setattr(params, name, getattr(base, name))
    params.n_ctx = cells_per_slot(slots, kv_cells) * slots
    params.n_batch = params.n_ubatch = BATCH_TOKENS
    params.n_seq_max = slots
    params.n_threads = params.n_threads_batch = n_threads
    params.kv_unified = unified
    return params


class Engine(TurnMixin):
    """A multi-sequence llama.cpp context decoded by one background thread (started at the first request).

    Args:
        llama_cpp: The ``llama_cpp`` module.
        model: The loaded ``llama_model`` pointer.
        vocab: The model's vocabulary pointer.
        slots: Sequences decoded together.
        kv_cells: KV cells of all slots together (each slot's stream gets ``kv_cells / slots``).
        n_threads: CPU threads for llama.cpp.
        base_params: Context parameters to start from (the single-sequence context's: attention kernel, KV types).
        piece: Token → bytes (special tokens render as nothing).
        is_eog: Whether a token ends generation.
        prompt_cache: Saved prompt prefixes (``PromptCache``), or ``None``.
        n_ctx_seq: Most tokens (prompt plus completion) of one request; default (and at most) a slot's cells.
        unified: One KV stream shared by all slots instead of one per slot: shared prompt prefixes are stored and
            read once (measured ~25-30 % more tokens per second at 8 sequences on SmolLM2 with 1 thread), but a
            request's logits then depend on where other requests' cells lie, so a seed's text can change with what
            else runs (see the module docstring).

    Raises:
        ModelError: when llama.cpp cannot create the context.
    """

    def __init__(self, llama_cpp: Any, model: Any, vocab: Any, *, slots: int, kv_cells: int, n_threads: int,
                 base_params: Any, piece: Callable[[int], bytes], is_eog: Callable[[int], bool],
                 prompt_cache: Any = None, n_ctx_seq: int | None = None, unified: bool = False) -> None:
        self._lc = llama_cpp
        self._vocab = vocab
        self._piece, self._is_eog = piece, is_eog
        self.prompt_cache = prompt_cache
        per_slot = cells_per_slot(slots, kv_cells)
        self.kv_cells = per_slot * slots
        self.n_ctx_seq = min(n_ctx_seq or per_slot, per_slot)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.unified = unified
        self.context_params = engine_context_params(llama_cpp, base_params, slots, kv_cells, n_threads,
                                                    unified=unified)
        self.ctx = llama_cpp.llama_init_from_model(model, self.context_params)
        if not self.ctx:
            raise ModelError(f"llama.cpp could not create the engine's context ({slots} slots, {kv_cells} cells)")
        self._memory = llama_cpp.llama_get_memory(self.ctx)
        self._batch = llama_cpp.llama_batch_init(BATCH_TOKENS, 0, slots)
        self.slots = [Slot(seq_id=i) for i in range(slots)]
        self._queue: collections.deque[EngineRequest] = collections.deque()
        self._running: list[EngineRequest] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._forget = False
        self._copy_pending = False  # a stream copy (seq_cp) waits for the next llama_decode
        self._turn = 0
        #: Counters: admitted, finished, cancelled, failed, decode_calls, tokens_decoded, prompt_evaluated,
        #: reused, copied, restored, most_running, sampled (tokens), decode_s (inside ``llama_decode``), python_s
        #: (batch filling and sampling around it); ``last_prefill`` is the latest request's prefill.
        self.stats: dict[str, Any] = dict.fromkeys(
            ("admitted", "finished", "cancelled", "failed", "decode_calls", "tokens_decoded", "prompt_evaluated",
             "reused", "copied", "restored", "most_running", "sampled", "decode_s", "python_s"), 0)
        self.stats["last_prefill"] = {}

    # -- public API --------------------------------------------------------------------------------------

    def submit(self, prompt: list[int], params: GenerationParams, seed: int | None, *,
               on_text: Callable[[str], None] | None = None, prompt_cache: Any = None,
               score_ids: list[int] | None = None) -> EngineRequest:
        """Queue one generation; it is admitted as soon as a slot is free (FIFO).

        Args:
            prompt: The prompt tokens (at least one).
            params: Sampling parameters (``n`` is ignored: one completion).
            seed: The request's seed (``None``: fresh entropy).
            on_text: Called from the engine thread with text that became safe to show (streaming).
            prompt_cache: The ``PromptCache`` this request restores from and saves to (default: the engine's).
            score_ids: Score instead of sampling: the request ends after its prompt is evaluated, with
                ``request.scores`` the log-softmax of the last position's logits at these token ids (its completion
                is empty). The prompt is evaluated exactly as for a generation (last token alone, prefix reuse),
                so the scores are the logits a generation from that prompt would sample from.

        Raises:
            ModelError: when the engine is closed or the prompt is empty.
        """
        if not prompt:
            raise ModelError("cannot generate from an empty prompt")
        request = EngineRequest(self, list(prompt), params, seed, on_text, prompt_cache or self.prompt_cache)
        request.score_ids = list(score_ids) if score_ids is not None else None
        with self._cond:
            if self._closed:
                raise ModelError("the llama.cpp engine is closed")
            self._queue.append(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="ponder-llamacpp-engine", daemon=True)
                self._thread.start()
            self._cond.notify()
        return request

    def forget(self) -> None:
        """Drop every idle slot's cached cells at the next turn (what a new process has; tests and benchmarks)."""
        with self._cond:
            self._forget = True
            self._cond.notify()

    def wake(self) -> None:
        """Make the loop look at its requests now (after a cancellation)."""
        with self._cond:
            self._cond.notify()

    def close(self) -> None:
        """Stop the loop (pending requests fail), free the context (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
            if thread.is_alive():
                logger.warning("the llama.cpp engine thread did not stop; its context is left allocated")
                return
        for request in [*self._queue, *self._running]:
            if request.live is not None:
                request.live.close()
            request._finish(None, ModelError("the llama.cpp engine was closed"))
        self._queue.clear()
        self._running.clear()
        if self.ctx:
            self._lc.llama_batch_free(self._batch)
            self._lc.llama_free(self.ctx)
            self.ctx = None

    # -- the loop ------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._queue and not self._running:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                self._step()
            except Exception as exc:  # a bug must fail the requests, never hang their callers
                logger.exception("llama.cpp engine turn failed")
                self._reset(ModelError(f"the llama.cpp engine failed: {type(exc).__name__}: {exc}"))

    def _step(self) -> None:
        """One turn: drop cancelled requests, admit queued ones, decode one batch, sample."""
        self._turn += 1
        if self._forget:
            self._forget = False
            self._forget_idle()
        self._reap()
        self._admit()
        self._attach_waiting()
        self.stats["most_running"] = max(self.stats["most_running"], len(self._running))
        started = time.perf_counter()
        plan = self._fill_batch()
        if not plan:
            if self._running and all(r.donor is not None for r in self._running):
                for r in self._running:  # cannot happen (donors always run); never spin
                    r.donor = None
            return
        before = time.perf_counter()
        code = self._lc.llama_decode(self.ctx, self._batch)
        after = time.perf_counter()
        self.stats["decode_calls"] += 1
        self.stats["decode_s"] += after - before
        if code == 1:
            self._no_room()
            return
        if code != 0:
            self._reset(ModelError(f"llama_decode returned {code} on the llama.cpp engine's context"))
            return
        self._copy_pending = False
        self.stats["tokens_decoded"] += int(self._batch.n_tokens)
        self._after_decode(plan)
        self.stats["python_s"] += before - started + time.perf_counter() - after

    def _reap(self) -> None:
        """Finish cancelled requests (queued or running)."""
        with self._cond:
            queued = [r for r in self._queue if r.cancelled]
            for r in queued:
                self._queue.remove(r)
        for r in queued:
            self.stats["cancelled"] += 1
            r._finish(None, GenerationCancelled("the generation was cancelled"))
        for r in [r for r in self._running if r.cancelled]:
            self.stats["cancelled"] += 1
            self._release(r, None, GenerationCancelled("the generation was cancelled"))

    def _release(self, request: EngineRequest, completion: Completion | None, error: BaseException | None) -> None:
        """End a running request: its slot keeps its cells (prefix reuse) and is free at once."""
        if request.live is not None:
            request.live.close()
        if request.slot is not None:
            request.slot.busy = False
            request.slot.last_used = self._turn
        if request in self._running:
            self._running.remove(request)
        for other in self._running:
            if other.donor is request:
                other.donor = None
        request._finish(completion, error)

    def _fail(self, request: EngineRequest, error: BaseException) -> None:
        self.stats["failed"] += 1
        self._release(request, None, error)

    def _reset(self, error: ModelError) -> None:
        """Fail every running request and clear the KV cache (after llama.cpp failed)."""
        for request in list(self._running):
            self._fail(request, error)
        self._lc.llama_memory_clear(self._memory, True)
        for slot in self.slots:
            slot.tokens = []

    # -- admission -------------------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Admit queued requests (FIFO) while a slot is free."""
        while True:
            with self._cond:
                if not self._queue:
                    return
                request = self._queue.popleft()
            free = [s for s in self.slots if not s.busy]
            if not free:
                with self._cond:
                    self._queue.appendleft(request)
                return
            error = self._start(request, free)
            if error is not None:
                self.stats["failed"] += 1
                request._finish(None, ModelError(error))

    def _start(self, request: EngineRequest, free: list[Slot]) -> str | None:
        """Put ``request`` on a free slot; return an error message or ``None``."""
        prompt, params = request.prompt, request.params
        budget = min(params.max_tokens, self.n_ctx_seq - len(prompt))
        if budget < 1:
            return (f"the prompt has {len(prompt)} tokens but a llamacpp engine slot holds {self.n_ctx_seq} "
                    "(prompt plus completion); raise llamacpp_n_ctx / llamacpp_kv_cells or shorten the conversation")
        grammar = None
        if params.grammar:
            from ponder.models.llamacpp_grammar import GrammarSampler

            try:
                grammar = GrammarSampler(self._lc, self._vocab, params.grammar)
            except ModelError as exc:
                return str(exc)
        limit = len(prompt) - 1
        slot = max(free, key=lambda s: (min(common_prefix(s.tokens, prompt), limit), not s.tokens, -s.last_used))
        available = max(min(common_prefix(slot.tokens, prompt), limit), self._best_copy(prompt, slot)[1])
        request.donor = self._promised_donor(prompt, available)
        request.expect = min(common_prefix(request.donor.prompt, prompt), limit) if request.donor else available
        request.live = Live(prompt=prompt, params=params, budget=budget, rng=np.random.default_rng(request.seed),
                            grammar=grammar, on_text=request.on_text, score_ids=request.score_ids)
        request.slot = slot
        slot.busy = True
        self._running.append(request)
        self.stats["admitted"] += 1
        if request.donor is None:
            self._attach(request)
        return None

    def _best_copy(self, prompt: list[int], exclude: Slot) -> tuple[Slot | None, int]:
        """The slot (other than ``exclude``) whose cells share the longest prefix with ``prompt``."""
        best, shared = None, 0
        for slot in self.slots:
            if slot is not exclude:
                n = min(common_prefix(slot.tokens, prompt), len(prompt) - 1)
                if n > shared:
                    best, shared = slot, n
        return best, shared

    def _promised_donor(self, prompt: list[int], available: int) -> EngineRequest | None:
        """A running request still evaluating a prompt that shares clearly more than ``available`` tokens."""
        best, shared = None, available + MIN_SHARE
        for other in self._running:
            if other.live is not None and not other.live.generating and other.donor is None:
                n = min(common_prefix(other.prompt, prompt), len(prompt) - 1)
                if n >= shared and n > len(other.slot.tokens if other.slot else []):
                    best, shared = other, n
        return best

    def _forget_idle(self) -> None:
        """Drop the cached cells of every idle slot."""
        for slot in self.slots:
            if not slot.busy and slot.tokens:
                self._lc.llama_memory_seq_rm(self._memory, slot.seq_id, 0, -1)
                slot.tokens = []

    def _no_room(self) -> None:
        """``llama_decode`` found no KV room: fail the youngest running request rather than loop.

        A slot's stream holds its request's prompt plus budget, so this should not happen.
        """
        if self._running:
            youngest = self._running[-1]
            if youngest.slot is not None:
                self._lc.llama_memory_seq_rm(self._memory, youngest.slot.seq_id, 0, -1)
                youngest.slot.tokens = []
            self._fail(youngest, ModelError(f"the llamacpp engine's KV cache is full ({self.n_ctx_seq} cells per "
                                            "slot); raise llamacpp_kv_cells or lower max_tokens"))
