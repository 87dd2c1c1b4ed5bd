"""Grammar-constrained sampling per sequence with llama.cpp's grammar sampler (GBNF).

:class:`GrammarSampler` wraps one ``llama_sampler_init_grammar`` object: the sequence's grammar state. Picking a
token costs almost nothing when the model already follows the grammar: the token is first drawn from the
unconstrained distribution (:func:`~ponder.models.llamacpp_decode.pick_token`) and checked alone; only when the
grammar rejects it are the whole vocabulary's logits masked by the grammar and the token drawn again from what
is left. Drawing from ``p``, keeping the draw when it is allowed and otherwise drawing from ``p`` restricted to
the allowed set gives exactly ``p`` restricted to the allowed set (an allowed token ``t`` comes out with
probability ``p(t) + (1 - A) * p(t) / A = p(t) / A``, where ``A`` is the allowed mass), and greedy decoding picks
the allowed argmax either way. This is how the llama.cpp server checks grammars too.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from ponder.core.errors import ModelError
from ponder.models.base import GenerationParams
from ponder.models.llamacpp_decode import pick_token

_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarSampler:
    """The grammar state of one sequence.

    Args:
        llama_cpp: The ``llama_cpp`` module.
        vocab: The model's ``llama_vocab`` pointer.
        grammar: GBNF text.
        root: The start rule.

    Raises:
        ModelError: when llama.cpp rejects the grammar (its parser logs why).
    """

    def __init__(self, llama_cpp: Any, vocab: Any, grammar: str, root: str = "root") -> None:
        self._lc = llama_cpp
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), root.encode("utf-8"))
        if not self._sampler:
            raise ModelError(f"llama.cpp rejected the grammar (root rule {root!r}); see its log for the position")
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self._all = np.zeros(self._n_vocab, dtype=_TOKEN_DATA)
        self._all["id"] = np.arange(self._n_vocab, dtype=np.intc)
        #: Tokens the unconstrained draw proposed that the grammar rejected (each cost a full-vocabulary pass).
        self.rejections = 0

    def close(self) -> None:
        """Free the llama.cpp sampler (idempotent)."""
        if self._sampler:
            self._lc.llama_sampler_free(self._sampler)
            self._sampler = None

    def __del__(self) -> None:  # a dropped sequence must not leak its sampler
        self.close()

    def _apply(self, data: np.ndarray) -> None:
        array = self._lc.llama_token_data_array(
            data=data.ctypes.data_as(ctypes.POINTER(self._lc.llama_token_data)), size=len(data), selected=-1,
            sorted=False)
        self._lc.llama_sampler_apply(self._sampler, ctypes.byref(array))

    def allows(self, token: int) -> bool:
        """Whether the grammar accepts ``token`` next."""
        self._one["id"][0], self._one["logit"][0] = token, 0.0
        self._apply(self._one)
        return bool(np.isfinite(self._one["logit"][0]))

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """A copy of ``logits`` with every token the grammar rejects next set to ``-inf``."""
        self._all["logit"] = logits[: self._n_vocab]
        self._all["p"] = 0.0
        self._apply(self._all)
        masked = np.full(logits.shape, -np.inf, dtype=np.float32)
        masked[: self._n_vocab] = self._all["logit"]
        return masked

    def pick(self, logits: np.ndarray, params: GenerationParams, rng: np.random.Generator) -> tuple[int, float]:
        """Draw the next token from ``logits`` restricted to what the grammar allows (see the module docstring).

        The log-probability (when asked for) is the token's under the grammar-restricted distribution.

        Raises:
            ModelError: when the grammar allows no token at all (it cannot be completed).
        """
        token, logprob = pick_token(logits, params, rng)
        if self.allows(token) and not params.logprobs:
            return token, logprob
        masked = self.mask(logits)
        if not np.isfinite(masked).any():
            raise ModelError("the grammar allows no next token (it cannot be completed from here)")
        if not self.allows(token):
            self.rejections += 1
            token, _ = pick_token(masked, params, rng)
        if not params.logprobs:
            return token, 0.0
        top = float(masked.max())
        logsum = top + float(np.log(np.exp(masked - top, dtype=np.float64).sum()))
        return token, float(masked[token]) - logsum

    def accept(self, token: int) -> None:
        """Advance the grammar state past ``token`` (a token :meth:`pick` returned; not for end-of-generation)."""
        self._lc.llama_sampler_accept(self._sampler, token)
