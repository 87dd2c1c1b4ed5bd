"""The ``prm`` verifier: a process reward model scores every step, Math-Shepherd style.

For step ``i`` the PRM reads the question and steps ``1..i`` (each on its own line) and the score is read at the
position right after step ``i``: ``score_i = P(good) / (P(good) + P(bad))`` over the next-token probabilities of
the "good" and "bad" tokens (:meth:`~ponder.models.base.ModelBackend.option_logprobs`). A trace's value is the
**minimum** over its steps (Math-Shepherd's aggregate: a solution is as good as its worst step); ``per_step``
keeps them all. A backend that cannot score options samples the sign instead (see
:func:`~ponder.graphs.verifiers.llm.ask_options`). Every model call's tokens count in the :class:`Score`; a
step prompt scored before by the same verifier and model is not asked again (beam search rescoring a growing
prefix pays for each new step only).

**The model.** ``PRMVerifier("<spec>")`` loads any model spec through
:func:`~ponder.models.spec.load_model` (cached per process); without a spec the run's model is asked (the
embedded model is a weak stand-in, for tests and demos).

**Formats.** :class:`PRMFormat` says how steps are shown and which tokens judge them:

- :data:`INSTRUCT` (the default): a chat prompt for an instruction model (``prompts/prm_step.txt``: question,
  ``Step n: ...`` lines, then "Reply + if the last step is good, - if it is wrong").
- :data:`MATH_SHEPHERD` (chosen for a spec naming ``math-shepherd``, e.g. ``math-shepherd-mistral-7b-prm``): no
  instruction; the text is ``"{question} Step 1: ... ки"``, then ``"Step 2: ... ки"`` and so on, one step a line,
  and the score is read right after the step tag ``ки``, with good/bad tokens ``+``/``-``: exactly where
  Math-Shepherd's own code reads ``logits[..., [+, -]].softmax()[0]`` at each tag (a causal model's logits at a tag
  do not depend on what follows, so scoring each prefix equals its single pass). The backends render the text as
  ONE user message through the chat template, so the served model must have a pass-through template: a
  transformers model directory whose ``tokenizer_config.json`` sets
  ``"chat_template": "{{ bos_token }}{{ messages[0]['content'] }}"`` (spec
  ``transformers:/path/to/math-shepherd-mistral-7b-prm``), or an OpenAI-compatible server started with that
  template (``vllm serve ... --chat-template``). The first token of each option decides (``+`` and ``-`` are
  single tokens in Mistral's vocabulary).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from ponder.core.prompts import render
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.graphs.verifiers.llm import ask_options
from ponder.graphs.verifiers.render import TASK_CHARS, clip, render_step
from ponder.models.base import Message, ModelBackend

#: Step prompts remembered per verifier (beyond this the oldest are forgotten).
CACHE_SIZE = 4096


@dataclass(frozen=True)
class PRMFormat:
    """How the steps are shown to a PRM and which tokens judge them.

    Attributes:
        prompt: The prompt file (``prompts/<prompt>.txt``, placeholders ``question`` and ``steps``); ``None``:
            the raw text ``"{question} {steps}"`` (a PRM trained on bare text, such as Math-Shepherd).
        step: How one step is written (``{n}``: its number from 1; ``{text}``: the step on one line).
        tag: Written after every step (Math-Shepherd's step tag ``" ки"``; ``""``: none).
        separator: Between steps.
        good: The option that marks a good step (its first token decides).
        bad: The option that marks a bad step.
    """

    prompt: str | None = "prm_step"
    step: str = "Step {n}: {text}"
    tag: str = ""
    separator: str = "\n"
    good: str = "+"
    bad: str = "-"


#: An instruction model asked to judge the last step (the default).
INSTRUCT = PRMFormat()
#: ``math-shepherd-mistral-7b-prm``: bare text, steps tagged ``ки``, judged by ``+`` / ``-``.
MATH_SHEPHERD = PRMFormat(prompt=None, tag=" ки")


def step_texts(trace: Trace) -> list[str]:
    """Each step of ``trace`` on one line; the final answer is appended to the last step (``The answer is: X``)."""
    texts = [render_step(step, one_line=True) for step in trace.steps]
    if trace.final_answer is not None:
        answer = f"The answer is: {' '.join(clip(trace.final_answer, 300).split())}"
        texts = [*texts[:-1], f"{texts[-1]} | {answer}".lstrip(" |")] if texts else [answer]
    return texts


@dataclass
class PRMVerifier:
    """A process reward model's per-step scores; the trace's value is the minimum (Math-Shepherd).

    Args:
        model_spec: The PRM's model spec (loaded once per process); ``None``: the run's model (``ctx.model``).
        format: How steps are shown (``None``: :data:`MATH_SHEPHERD` for a spec naming ``math-shepherd``,
            else :data:`INSTRUCT`).
    """

    model_spec: str | None = None
    format: PRMFormat | None = None
    name: str = "prm"
    _cache: OrderedDict[tuple[str, str], float] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.format is None:
            shepherd = self.model_spec is not None and "math-shepherd" in self.model_spec.lower()
            self.format = MATH_SHEPHERD if shepherd else INSTRUCT

    def messages(self, question: str, steps: list[str]) -> list[Message]:
        """The prompt that scores the last of ``steps``."""
        fmt = self.format or INSTRUCT
        lines = fmt.separator.join(fmt.step.format(n=n, text=text) + fmt.tag for n, text in enumerate(steps, 1))
        question = clip(question, TASK_CHARS)
        content = f"{question} {lines}" if fmt.prompt is None else render(fmt.prompt, question=question, steps=lines)
        return [{"role": "user", "content": content}]

    def score_steps(self, trace: Trace, ctx: VerifyContext) -> list[float]:
        """One score in [0, 1] per step (the final answer counts as part of the last step)."""
        return self._score_steps(trace, ctx)[0]

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """The minimum step score (0.5 for a trace with no steps), ``per_step`` filled, every call's tokens."""
        values, cost, notes = self._score_steps(trace, ctx)
        if not values:
            return Score(value=0.5, per_step=[], detail="prm: no steps to score")
        worst = min(range(len(values)), key=values.__getitem__)
        detail = f"prm: min over {len(values)} steps = {values[worst]:.2f} (step {worst + 1})"
        return Score(value=values[worst], per_step=values, detail=detail + (f"; {notes}" if notes else ""), **cost)

    def _model(self, ctx: VerifyContext) -> ModelBackend:
        if self.model_spec is None:
            return ctx.model
        from ponder.models.spec import load_model

        return load_model(self.model_spec, ctx.settings)

    def _score_steps(self, trace: Trace, ctx: VerifyContext) -> tuple[list[float], dict[str, int], str]:
        """Per-step scores, what the calls cost, and a note on cached steps and fallbacks."""
        fmt, model = self.format or INSTRUCT, self._model(ctx)
        texts = step_texts(trace)
        values: list[float] = []
        cost = {"prompt_tokens": 0, "completion_tokens": 0, "model_calls": 0}
        cached, fallbacks = 0, set()
        for i in range(1, len(texts) + 1):
            messages = self.messages(trace.task, texts[:i])
            key = (model.spec, messages[0]["content"])
            with self._lock:
                known = self._cache.get(key)
            if known is not None:
                values.append(known)
                cached += 1
                continue
            answer = ask_options(model, messages, (fmt.good, fmt.bad))
            cost["prompt_tokens"] += answer.prompt_tokens
            cost["completion_tokens"] += answer.completion_tokens
            cost["model_calls"] += 1
            if answer.how != "logprobs":
                fallbacks.add(answer.how)
            value = 0.5 if answer.probs is None else round(answer.probs[0] / max(sum(answer.probs), 1e-300), 6)
            values.append(value)
            if answer.probs is not None:
                self._remember(key, value)
        notes = [f"{cached} steps cached"] if cached else []
        if fallbacks:
            notes.append(f"no option log-probabilities: {', '.join(sorted(fallbacks))}")
        return values, cost, "; ".join(notes)

    def _remember(self, key: tuple[str, str], value: float) -> None:
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
