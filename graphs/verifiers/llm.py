"""The ``self`` verifier (the model rates the trajectory, as LATS's value function) and :func:`ask_options`.

The model reads the task and the trajectory so far (``prompts/verify_self.txt``) and is asked for one score digit,
0 to 9. The value is NOT a parsed reply: it is the expected digit under the model's next-token probabilities of
the ten digits (:meth:`~ponder.models.base.ModelBackend.option_logprobs`), renormalized over the digits and
divided by 9. A model that puts 60 % on "7" and 40 % on "3" scores (0.6·7 + 0.4·3) / 9 ≈ 0.60, where parsing
its greedy reply would say 0.78: the probabilities keep the model's uncertainty, and ties between candidates
become rare.

A backend without option scoring (``capabilities.option_logprobs`` false, or an OpenAI-compatible server that
turned out to give no log-probabilities) falls back to sampling the digit greedily, under a grammar that allows
only the options when the backend takes grammars, else parsed from a short free reply; ``Score.detail`` says
which. A reply with no digit scores 0.5. Every call's tokens count in the :class:`Score`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ponder.core.errors import ModelError
from ponder.core.prompts import render
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.graphs.verifiers.render import TASK_CHARS, clip, render_trace, trace_state
from ponder.models.base import GenerationParams, Message, ModelBackend

#: The score tokens of the ``self`` verifier: digit ``d`` is worth ``d / 9``.
DIGITS: tuple[str, ...] = tuple("0123456789")
#: Options whose probabilities add up to less than this carry no signal (every one at the floor).
MIN_MASS = 1e-12


@dataclass
class OptionAnswer:
    """What the model said about a set of options.

    Attributes:
        probs: A distribution over the options (renormalized option probabilities, or one-hot for a sampled
            reply); ``None`` when nothing could be read.
        how: ``logprobs`` (next-token probabilities), ``grammar`` (a reply sampled under a grammar),
            ``sampled`` (a free reply, parsed), ``unparsed`` (a free reply naming no option) or ``no mass``
            (the options have no probability).
        mass: Total probability of the options before renormalizing (``logprobs`` only; 1 otherwise).
        prompt_tokens: Prompt tokens of the call.
        completion_tokens: Tokens generated (0 for option scoring).
        reply: The sampled reply (fallbacks only).
    """

    probs: list[float] | None
    how: str
    mass: float = 1.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reply: str = ""


def ask_options(model: ModelBackend, messages: list[Message], options: Sequence[str]) -> OptionAnswer:
    """The model's distribution over ``options`` as the reply's first token (sampling when it cannot score).

    Raises:
        ModelError: when the backend fails (an unreachable server, a prompt that does not fit); a backend that
            finds out during the call that it cannot score options (``capabilities.option_logprobs`` turned
            false) falls back to sampling instead.
    """
    if model.capabilities.option_logprobs:
        try:
            scored = model.option_logprobs(messages, options)
        except ModelError:
            if model.capabilities.option_logprobs:
                raise
        else:
            probs = [math.exp(v) for v in scored.logprobs]
            mass = sum(probs)
            if mass < MIN_MASS:
                return OptionAnswer(None, "no mass", mass=mass, prompt_tokens=scored.prompt_tokens)
            return OptionAnswer([p / mass for p in probs], "logprobs", mass=mass, prompt_tokens=scored.prompt_tokens)
    return sample_option(model, messages, options)


def sample_option(model: ModelBackend, messages: list[Message], options: Sequence[str]) -> OptionAnswer:
    """A greedy reply naming one of ``options`` (one-hot ``probs``; ``None`` when it names none).

    The reply is grammar-constrained to the options when the backend takes grammars, else the option that appears
    first in a short free reply counts.
    """
    if model.capabilities.grammar:
        grammar = "root ::= " + " | ".join(json.dumps(o) for o in options)
        params, how = GenerationParams(temperature=0.0, max_tokens=8, grammar=grammar), "grammar"
    else:
        params, how = GenerationParams(temperature=0.0, max_tokens=8), "sampled"
    [completion] = model.generate(messages, params)
    text = completion.text.strip()
    found = [(text.find(o), -len(o), i) for i, o in enumerate(options) if o and o in text]
    prompt_tokens = completion.prompt_tokens or model.count_tokens(messages)
    probs = None
    if found:
        index = min(found)[2]
        probs = [1.0 if i == index else 0.0 for i in range(len(options))]
    return OptionAnswer(probs, how if found else "unparsed", prompt_tokens=prompt_tokens,
                        completion_tokens=completion.completion_tokens, reply=text)


@dataclass
class SelfVerifier:
    """LATS-style value: the expected score digit under the model's next-token probabilities, over 9.

    Args:
        max_steps: The trajectory's last steps shown to the model (older ones are summarized as omitted).
        prompt: The prompt file (``prompts/<prompt>.txt``; placeholders ``task``, ``state``, ``trajectory``).
    """

    name: str = "self"
    max_steps: int = 12
    prompt: str = "verify_self"

    def messages(self, trace: Trace) -> list[Message]:
        """The conversation that asks the model for a score digit."""
        text = render(self.prompt, task=clip(trace.task, TASK_CHARS), state=trace_state(trace),
                      trajectory=render_trace(trace, max_steps=self.max_steps))
        return [{"role": "user", "content": text}]

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """One model call: the expected digit / 9 (0.5 when the model's reply gives nothing to read)."""
        answer = ask_options(ctx.model, self.messages(trace), DIGITS)
        cost = {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                "model_calls": 1}
        if answer.probs is None:
            why = ("the score digits have no probability" if answer.how == "no mass"
                   else f"no digit in the reply {clip(answer.reply, 60)!r} (no option log-probabilities)")
            return Score(value=0.5, detail=f"self: {why}; scored 0.5", **cost)
        expected = sum(p * int(d) for p, d in zip(answer.probs, DIGITS, strict=True))
        if answer.how == "logprobs":
            best = DIGITS[max(range(len(DIGITS)), key=answer.probs.__getitem__)]
            detail = (f"self: expected score {expected:.2f}/9 from the digits' probabilities (likeliest {best}, "
                      f"digits' mass {answer.mass:.2f})")
        else:
            detail = f"self: the model replied {expected:.0f}/9 ({answer.how}: no option log-probabilities)"
        return Score(value=min(1.0, max(0.0, round(expected / 9, 6))), detail=detail, **cost)
