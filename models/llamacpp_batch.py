"""Multi-sequence batched decoding for the llama.cpp backend (self-consistency samples in one pass).

llama-cpp-python's ``Llama`` decodes one sequence at a time. :class:`BatchDecoder` opens a second llama.cpp
context on the same weights with up to :data:`MAX_SEQS` sequences and a unified KV cache, then:

1. evaluates the prompts' longest common prefix once (sequence 0) and shares it with the other sequences
   (``llama_memory_seq_cp``: the KV cells are shared, not copied);
2. evaluates each prompt's remainder, all sequences in one ``llama_batch``;
3. decodes in lock step: one token per live sequence per ``llama_decode`` call, sampled here with numpy
   (temperature / top-p, a ``numpy`` generator per sequence seeded ``seed + i``; argmax when greedy).

Each sequence slot keeps its KV cells between batches, so the next agent step of the same sample evaluates only
its new tokens. On a 2-core CPU a decode step of 8 sequences costs ~4.5-5× a step of one (llama.cpp is compute
bound there), so 8 samples decode ~1.6-1.8× faster than one after another; prompt evaluation costs the same
either way, which leaves whole self-consistency runs only slightly faster (see ``benchmarks/README.md``).
Tokens are picked by the same :func:`~ponder.models.llamacpp_decode.pick_token` as single-sequence decoding, with
the same per-seed numpy generator, so a seed means the same thing on both paths; results may still differ in rare
near-ties (batched kernels round differently).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ponder.models.base import Completion, GenerationParams, completion_from_pieces, stop_in_tail
from ponder.models.llamacpp_decode import Entry, common_prefix, decode_entries, pick_token

logger = logging.getLogger("ponder.models")

#: Most sequences decoded together.
MAX_SEQS = 8


@dataclass
class _Seq:
    """One sequence being decoded."""

    prompt_tokens: int
    rng: np.random.Generator
    pos: int
    slot: int = 0
    tokens: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)
    logprobs: list[float] = field(default_factory=list)
    last: int = -1
    done: bool = False
    hit_end: bool = False


class BatchDecoder:
    """A multi-sequence llama.cpp context over an already loaded model (callers hold the model's lock).

    Args:
        llama_cpp: The ``llama_cpp`` module.
        model: The loaded ``llama_model`` pointer (``Llama.model``).
        vocab: The model's vocabulary pointer.
        n_ctx: KV cells shared by all sequences.
        n_threads: CPU threads.
        piece: Token → bytes (special tokens render as nothing).
        is_eog: Whether a token ends generation.
    """

    def __init__(self, llama_cpp: Any, model: Any, vocab: Any, *, n_ctx: int, n_threads: int,
                 piece: Callable[[int], bytes], is_eog: Callable[[int], bool], base_params: Any = None) -> None:
        self._lc = llama_cpp
        self._vocab = vocab
        self._piece = piece
        self._is_eog = is_eog
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        params = llama_cpp.llama_context_default_params()
        if base_params is not None:  # the single-sequence context's settings (attention kernel, KV types, ...)
            for name, _ in type(params)._fields_:
                setattr(params, name, getattr(base_params, name))
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = MAX_SEQS
        params.n_threads = params.n_threads_batch = n_threads
        params.kv_unified = True
        self.n_ctx = n_ctx
        self.ctx = llama_cpp.llama_init_from_model(model, params)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not create a batched context")
        self.batch = llama_cpp.llama_batch_init(512, 0, MAX_SEQS)
        #: The tokens whose KV cells each sequence slot holds (reused by the next batch, like server slots).
        self.slots: list[list[int]] = [[] for _ in range(MAX_SEQS)]

    def close(self) -> None:
        """Free the context and the batch."""
        if self.ctx:
            self._lc.llama_batch_free(self.batch)
            self._lc.llama_free(self.ctx)
            self.ctx = None

    # -- llama.cpp plumbing ---------------------------------------------------------------------------

    def _decode(self, entries: list[Entry]) -> None:
        """Evaluate ``(token, pos, seq_ids, want_logits)`` entries, in chunks of the batch size."""
        decode_entries(self._lc, self.ctx, self.batch, 512, entries)

    def _logits(self, index: int) -> np.ndarray:
        ptr = self._lc.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def _clear(self) -> None:
        self._lc.llama_memory_clear(self._lc.llama_get_memory(self.ctx), True)
        self.slots = [[] for _ in range(MAX_SEQS)]

    def _assign(self, prompts: list[list[int]]) -> tuple[list[int], list[int]]:
        """A slot per prompt (the free slot whose cached tokens share the longest prefix) and what it keeps."""
        free = list(range(MAX_SEQS))
        slots, keep = [], []
        for prompt in prompts:
            best = max(free, key=lambda s: (common_prefix(self.slots[s], prompt), -len(self.slots[s])))
            free.remove(best)
            slots.append(best)
            keep.append(min(common_prefix(self.slots[best], prompt), len(prompt) - 1))
        return slots, keep

    # -- generation ------------------------------------------------------------------------------------

    def generate(self, prompts: list[list[int]], params: GenerationParams, seeds: list[int]) -> list[Completion]:
        """One completion per prompt (at most :data:`MAX_SEQS`), decoded together.

        Raises:
            RuntimeError: when llama.cpp fails (e.g. the prompts do not fit the shared KV cache).
        """
        if len(prompts) > MAX_SEQS:
            raise ValueError(f"at most {MAX_SEQS} prompts per batch")
        need = sum(len(p) for p in prompts) + len(prompts) * params.max_tokens
        if need > self.n_ctx:
            raise RuntimeError(f"batch needs up to {need} KV cells, the batched context holds {self.n_ctx}")
        slots, keep = self._assign(prompts)
        kept_elsewhere = sum(len(self.slots[s]) for s in range(MAX_SEQS) if s not in slots)
        if kept_elsewhere + sum(len(p) for p in prompts) + len(prompts) * params.max_tokens > self.n_ctx:
            self._clear()
            keep = [0] * len(prompts)
        try:
            seqs = self._prefill(prompts, seeds, slots, keep)
            self._run(seqs, params)
        except BaseException:
            self._clear()
            raise
        for seq in seqs:
            self.slots[seq.slot] = seq.tokens
        return [self._completion(s, params) for s in seqs]

    def _prefill(self, prompts: list[list[int]], seeds: list[int], slots: list[int], keep: list[int]) -> list[_Seq]:
        """Evaluate what the slots do not hold yet; the last prompt tokens go last, with logits.

        Fresh slots (nothing reusable) evaluate their common prefix once, as tokens shared by all of them.
        """
        memory = self._lc.llama_get_memory(self.ctx)
        for slot, kept in zip(slots, keep, strict=True):
            self._lc.llama_memory_seq_rm(memory, slot, kept, -1)
        keep = list(keep)
        fresh = [i for i, kept in enumerate(keep) if kept == 0]
        body: list[Entry] = []
        if len(fresh) > 1:
            shared = 0
            limit = min(len(prompts[i]) for i in fresh) - 1
            while shared < limit and all(prompts[i][shared] == prompts[fresh[0]][shared] for i in fresh):
                shared += 1
            owners = [slots[i] for i in fresh]
            body.extend((t, pos, owners, False) for pos, t in enumerate(prompts[fresh[0]][:shared]))
            for i in fresh:
                keep[i] = shared
        for i, prompt in enumerate(prompts):
            body.extend((prompt[pos], pos, [slots[i]], False) for pos in range(keep[i], len(prompt) - 1))
        if body:
            self._decode(body)
        self._decode([(p[-1], len(p) - 1, [slots[i]], True) for i, p in enumerate(prompts)])
        return [_Seq(prompt_tokens=len(p), rng=np.random.default_rng(seeds[i]), pos=len(p), last=i, slot=slots[i],
                     tokens=list(p)) for i, p in enumerate(prompts)]

    def _run(self, seqs: list[_Seq], params: GenerationParams) -> None:
        stops = [s for s in params.stop if s]
        while True:
            step: list[Entry] = []
            owners: list[_Seq] = []
            for seq in seqs:
                if seq.done:
                    continue
                token, logprob = pick_token(self._logits(seq.last), params, seq.rng)
                if self._is_eog(token):
                    seq.done = seq.hit_end = True
                    continue
                piece = self._piece(token)
                seq.pieces.append(piece)
                seq.text += piece
                seq.logprobs.append(logprob)
                if stops and stop_in_tail(seq.text, len(piece), stops):
                    seq.done = True
                    continue
                if len(seq.pieces) >= params.max_tokens:
                    seq.done = True
                    continue
                step.append((token, seq.pos, [seq.slot], True))
                owners.append(seq)
                seq.tokens.append(token)
                seq.pos += 1
            if not step:
                return
            self._decode(step)
            for i, seq in enumerate(owners):
                seq.last = i

    def _completion(self, seq: _Seq, params: GenerationParams) -> Completion:
        return completion_from_pieces(seq.pieces, params.stop, hit_end=seq.hit_end, prompt_tokens=seq.prompt_tokens,
                                      logprobs=seq.logprobs if params.logprobs else None)

