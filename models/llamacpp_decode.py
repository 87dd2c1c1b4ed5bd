"""Single-sequence decoding on the shared llama.cpp context, without llama-cpp-python's high-level loop.

:class:`SeqDecoder` drives sequence 0 of a ``Llama`` object's context with ``llama_decode`` directly: it
remembers which tokens the KV cache holds, so a new prompt evaluates only what differs from the last one (the
next agent step re-reads nothing but its new tokens), and it can restore a long prompt prefix from the on-disk
:class:`~ponder.models.llamacpp_prompts.PromptCache` instead of evaluating it (the first model call of a new
process). Tokens are picked by :func:`pick_token`, the same numpy sampler the batched decoder uses, so a seed
means the same thing on both paths.

Measured on a 2-core CPU (``benchmarks/decode.py``): ~10-20 % more tokens per second than looping over
``Llama.generate``, whose per-token bookkeeping (score copies, sampler chain, numpy views) is pure overhead here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ponder.models.base import GenerationParams

if TYPE_CHECKING:
    from ponder.models.llamacpp_prompts import PromptCache

logger = logging.getLogger("ponder.models")

_SEQ0 = (0,)


def pick_token(logits: np.ndarray, params: GenerationParams, rng: np.random.Generator) -> tuple[int, float]:
    """Pick the next token from raw logits; return it and its log-probability (0.0 unless asked for).

    Greedy (``temperature == 0``) takes the argmax. Temperature sampling uses the Gumbel-max trick (one pass
    over the vocabulary); ``top_p < 1`` sorts and samples the nucleus.

    Args:
        logits: The last position's logits, one float per vocabulary entry.
        params: Temperature, top-p and whether log-probabilities are wanted.
        rng: The sequence's random generator (seeded from the call's seed).
    """
    if params.temperature == 0:
        token = int(np.argmax(logits))
    elif params.top_p >= 1.0:
        noise = rng.gumbel(size=logits.shape[0]).astype(np.float32)
        token = int(np.argmax(logits / np.float32(params.temperature) + noise))
    else:
        scaled = logits / np.float32(params.temperature)
        order = np.argsort(-scaled)
        probs = np.exp(scaled[order] - scaled[order[0]])
        cumulative = np.cumsum(probs)
        keep = int(np.searchsorted(cumulative, params.top_p * cumulative[-1])) + 1
        kept = probs[:keep] / cumulative[keep - 1]
        token = int(order[rng.choice(keep, p=kept)])
    if not params.logprobs:
        return token, 0.0
    top = float(logits.max())
    logsum = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
    return token, float(logits[token]) - logsum


#: One token to evaluate: ``(token, position, sequence ids, whether to keep its logits)``.
Entry = tuple[int, int, Sequence[int], bool]


def decode_entries(llama_cpp: Any, ctx: Any, batch: Any, batch_size: int, entries: Sequence[Entry]) -> None:
    """Evaluate ``entries`` on ``ctx`` through ``batch`` (which holds ``batch_size`` tokens), chunk by chunk.

    Raises:
        RuntimeError: when ``llama_decode`` fails (KV cache full or invalid batch).
    """
    for start in range(0, len(entries), batch_size):
        chunk = entries[start:start + batch_size]
        batch.n_tokens = len(chunk)
        for i, (token, pos, seqs, logits) in enumerate(chunk):
            batch.token[i], batch.pos[i], batch.logits[i] = token, pos, logits
            batch.n_seq_id[i] = len(seqs)
            for j, seq in enumerate(seqs):
                batch.seq_id[i][j] = seq
        code = llama_cpp.llama_decode(ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} (KV cache full or invalid batch)")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class SeqDecoder:
    """Sequence 0 of a loaded ``Llama`` object's context, decoded token by token (callers hold the model's lock).

    Args:
        llama_cpp: The ``llama_cpp`` module.
        llama: The loaded ``Llama`` object (its context, batch size and vocabulary size are used).
    """

    def __init__(self, llama_cpp: Any, llama: Any) -> None:
        self._lc = llama_cpp
        self._llama = llama
        self.ctx = llama.ctx
        self.n_vocab = int(llama.n_vocab())
        self.n_batch = int(llama.n_batch)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        #: The tokens whose KV cells sequence 0 holds, in order.
        self.tokens: list[int] = []
        #: What the last :meth:`prefill` did: tokens reused in memory, restored from disk, evaluated.
        self.last_prefill: dict[str, int] = {}
        self._forget()
        # llama-cpp-python's own bookkeeping must not believe its cache is still valid.
        llama.n_tokens = 0

    def close(self) -> None:
        """Free the batch (the context belongs to the ``Llama`` object)."""
        if self.batch is not None:
            self._lc.llama_batch_free(self.batch)
            self.batch = None

    def _memory(self) -> Any:
        return self._lc.llama_get_memory(self.ctx)

    def _forget(self, keep: int = 0) -> None:
        """Drop the KV cells of sequence 0 from position ``keep`` on."""
        self._lc.llama_memory_seq_rm(self._memory(), 0, keep, -1)
        del self.tokens[keep:]

    def _decode(self, tokens: list[int], start: int) -> None:
        """Evaluate ``tokens`` at positions ``start...``; only the last one produces logits."""
        last = len(tokens) - 1
        entries = [(token, start + i, _SEQ0, i == last) for i, token in enumerate(tokens)]
        decode_entries(self._lc, self.ctx, self.batch, self.n_batch, entries)
        self.tokens.extend(tokens)

    def prefill(self, prompt: list[int], cache: PromptCache | None = None) -> None:
        """Make sequence 0 hold ``prompt`` and leave the logits of its last token ready.

        Reuses the longest prefix already in memory; when a prefix saved in ``cache`` covers clearly more,
        restores that instead; evaluates the rest. Long prompts that had to be evaluated are saved in ``cache``.

        Raises:
            RuntimeError: when llama.cpp fails (e.g. the prompt does not fit the context).
        """
        in_memory = min(common_prefix(self.tokens, prompt), len(prompt) - 1)
        restored = 0
        try:
            if cache is not None:
                restored = self._restore(cache, prompt, in_memory)
            keep = restored or in_memory
            self._forget(keep)
            evaluated = len(prompt) - keep
            self._decode(prompt[keep:], keep)
        except BaseException:
            self._forget()
            raise
        self.last_prefill = {"reused": 0 if restored else in_memory, "restored": restored, "evaluated": evaluated}
        if cache is not None and evaluated >= cache.min_new_tokens:
            cache.save(self._lc, self.ctx, self.tokens)

    def _restore(self, cache: PromptCache, prompt: list[int], keep: int) -> int:
        """Restore ``cache``'s best prefix of ``prompt`` when it beats ``keep`` by enough; return its length."""
        found = cache.best(prompt, at_least=keep + cache.min_gain)
        if found is None:
            return 0
        entry, shared = found
        self._forget()
        if not cache.restore(self._lc, self.ctx, entry):
            self._forget()
            return 0
        self.tokens = list(entry.tokens)
        shared = min(shared, len(prompt) - 1)
        self._forget(shared)
        return shared

    def step(self, token: int) -> None:
        """Append one sampled token to the sequence (its logits become the next ones).

        Raises:
            RuntimeError: when llama.cpp fails (e.g. the context is full).
        """
        try:
            self._decode([token], len(self.tokens))
        except BaseException:
            self._forget()
            raise

    def logits(self) -> np.ndarray:
        """The logits of the last evaluated token (a view: read it before the next decode)."""
        ptr = self._lc.llama_get_logits_ith(self.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
