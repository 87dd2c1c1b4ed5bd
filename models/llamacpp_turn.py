"""One turn of the llama.cpp engine's loop: put prompts into slots, fill one batch, sample after the decode.

Split out of :mod:`ponder.models.llamacpp_engine` (which owns admission, KV accounting and the thread); the
methods here run on the engine thread only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ponder.core.errors import ModelError
from ponder.models.base import Completion
from ponder.models.llamacpp_decode import common_prefix

if TYPE_CHECKING:
    from ponder.models.llamacpp_engine import Engine, EngineRequest

logger = logging.getLogger("ponder.models")

#: A prefix held by another slot is copied when it covers at least this many more tokens than the slot's own.
MIN_SHARE = 32
#: Tokens per ``llama_decode`` (running sequences' next tokens plus prompt chunks).
BATCH_TOKENS = 512

#: ``(request, tokens of its todo list in the batch, batch index of its logits or -1)``.
Plan = list[tuple["EngineRequest", int, int]]


def prompt_chunk(todo: int, room: int) -> int:
    """How many of a prompt's ``todo`` unevaluated tokens go into a batch with ``room`` free places.

    llama.cpp computes a sequence's attention by another kernel when the batch holds one token of it than when it
    holds several, which moves the logits (measured max |diff| ~0.5 on SmolLM2). Generated tokens are always
    evaluated alone, so the prompt's last token is too (its own turn, whether the prefix before it was evaluated
    now, reused, copied or restored), and every other prompt token in a chunk of at least two: a seed then gives the
    same text whatever the prefix reuse and the batch around it.
    """
    body = todo - 1
    if body <= 1:  # the last token alone; or a two-token prompt's first token (nothing to pair it with)
        return min(1, room)
    take = min(room, body)
    if body - take == 1:  # never leave a single body token for a later turn
        take -= 1
    return take if take >= 2 else 0


class TurnMixin:
    """The per-turn work of :class:`~ponder.models.llamacpp_engine.Engine` (a mixin: it uses the engine's state)."""

    def _attach_waiting(self: Engine) -> None:
        """Give requests their prompt cells once the request they wait for has evaluated the shared prefix."""
        for request in list(self._running):
            if request.attached:
                continue
            donor = request.donor
            if donor is not None and not donor.done() and donor.live is not None and not donor.live.generating:
                if donor.slot is None or common_prefix(donor.slot.tokens, request.prompt) < request.expect:
                    continue
            request.donor = None
            self._attach(request)

    def _attach(self: Engine, request: EngineRequest) -> None:
        """Make the request's slot hold the longest available prefix of its prompt; the rest becomes its todo.

        The prefix is the slot's own, a saved one (prompt cache) or another slot's: that slot's whole KV stream is
        copied (llama.cpp copies streams whole; one memcpy, far cheaper than evaluating the prefix again) and cut
        back to the prefix.
        """
        slot, prompt, live = request.slot, request.prompt, request.live
        assert slot is not None and live is not None
        limit = len(prompt) - 1
        own = min(common_prefix(slot.tokens, prompt), limit)
        donor, copied = self._best_copy(prompt, slot)
        restored = self._restore(request, max(own, copied))
        own = min(common_prefix(slot.tokens, prompt), limit)
        memory, lc = self._memory, self._lc
        if restored:
            own = copied = 0
        elif donor is not None and copied >= own + MIN_SHARE:
            lc.llama_memory_seq_rm(memory, slot.seq_id, 0, -1)
            lc.llama_memory_seq_cp(memory, donor.seq_id, slot.seq_id, -1, -1)  # copied at the next decode
            self._copy_pending = True
            lc.llama_memory_seq_rm(memory, slot.seq_id, copied, -1)
            slot.tokens = list(prompt[:copied])
            own = 0
        else:
            copied = 0
            lc.llama_memory_seq_rm(memory, slot.seq_id, own, -1)
            del slot.tokens[own:]
        keep = len(slot.tokens)
        if keep and len(prompt) - keep == 2:  # one token before the last would be evaluated alone: see prompt_chunk
            keep -= 1
            lc.llama_memory_seq_rm(memory, slot.seq_id, keep, -1)
            del slot.tokens[keep:]
            own, copied, restored = min(own, keep), min(copied, keep), min(restored, keep)
        live.todo, live.pos = list(prompt[keep:]), keep
        request.attached = True
        request.prefill = {"reused": own, "copied": copied, "restored": restored, "evaluated": len(prompt) - keep}
        self.stats["last_prefill"] = dict(request.prefill)
        for key in ("reused", "copied", "restored"):
            self.stats[key] += request.prefill[key]
        self.stats["prompt_evaluated"] += len(prompt) - keep

    def _restore(self: Engine, request: EngineRequest, available: int) -> int:
        """Restore a saved prefix into the request's slot when it beats ``available`` by enough; its length."""
        cache, slot, prompt = request.cache, request.slot, request.prompt
        if cache is None or slot is None or self._copy_pending:  # a restore must not race a pending stream copy
            return 0
        found = cache.best(prompt, at_least=available + cache.min_gain)
        if found is None or len(found[0].tokens) > self.n_ctx_seq:
            return 0
        entry, shared = found
        self._lc.llama_memory_seq_rm(self._memory, slot.seq_id, 0, -1)
        slot.tokens = []
        if not cache.restore(self._lc, self.ctx, entry, seq_id=slot.seq_id):
            self._lc.llama_memory_seq_rm(self._memory, slot.seq_id, 0, -1)
            return 0
        shared = min(shared, len(prompt) - 1)
        self._lc.llama_memory_seq_rm(self._memory, slot.seq_id, shared, -1)
        slot.tokens = list(entry.tokens[:shared])
        return shared

    def _fill_batch(self: Engine) -> Plan:
        """Write this turn's batch: generating requests' last tokens first, then prompt chunks (FIFO)."""
        batch, n, plan = self._batch, 0, []
        token, pos, n_seq, seq_id, want = batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits
        for r in self._running:
            live = r.live
            if r.attached and live.generating:
                token[n], pos[n], n_seq[n], want[n] = live.todo[0], live.pos, 1, 1
                seq_id[n][0] = r.slot.seq_id
                plan.append((r, 1, n))
                n += 1
        for r in self._running:
            live = r.live
            if not r.attached or live.generating or n >= BATCH_TOKENS:
                continue
            chunk = live.todo[:prompt_chunk(len(live.todo), BATCH_TOKENS - n)]
            if not chunk:
                continue
            seq = r.slot.seq_id
            for i, t in enumerate(chunk):
                token[n + i], pos[n + i], n_seq[n + i], want[n + i] = t, live.pos + i, 1, 0
                seq_id[n + i][0] = seq
            n += len(chunk)
            last = len(chunk) == len(live.todo)
            if last:
                want[n - 1] = 1
            plan.append((r, len(chunk), n - 1 if last else -1))
        batch.n_tokens = n
        return plan

    def _after_decode(self: Engine, plan: Plan) -> None:
        """Record the evaluated cells; every request with logits samples its next token (and may finish)."""
        for r, count, index in plan:
            live, slot = r.live, r.slot
            slot.tokens.extend(live.todo[:count])
            prefilled = not live.generating
            del live.todo[:count]
            live.pos += count
            if index < 0:
                continue
            if prefilled:
                self._save_prompt(r)
            try:
                logits = np.ctypeslib.as_array(self._lc.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,))
                if live.score_ids is not None:  # a scoring request: no token is sampled
                    r.scores = live.score(logits)
                    self.stats["finished"] += 1
                    self._release(r, Completion(text="", prompt_tokens=len(live.prompt)), None)
                    continue
                self.stats["sampled"] += 1
                token, logprob = live.pick(logits)
                end = bool(self._is_eog(token))
                finished = live.take(token, logprob, b"" if end else self._piece(token), end)
                completion = live.completion() if finished else None
            except Exception as exc:  # a bad grammar or a failing stream consumer fails this request only
                error = exc if isinstance(exc, ModelError) else ModelError(f"{type(exc).__name__}: {exc}")
                self._fail(r, error)
                continue
            if completion is not None:
                self.stats["finished"] += 1
                self._release(r, completion, None)

    def _save_prompt(self: Engine, request: EngineRequest) -> None:
        """Save a long evaluated prompt in the prompt cache (later processes restore it)."""
        cache: Any = request.cache
        if cache is None or request.prefill.get("evaluated", 0) < cache.min_new_tokens or request.slot is None:
            return
        try:
            cache.save(self._lc, self.ctx, list(request.slot.tokens), seq_id=request.slot.seq_id)
        except Exception as exc:  # the cache only saves time
            logger.debug("prompt cache save failed: %s", exc)
