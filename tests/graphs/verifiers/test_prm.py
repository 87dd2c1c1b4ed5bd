"""The ``prm`` verifier on scripted models: per-step P(+)/(P(+)+P(-)), the minimum as the value, the prompts of
each prefix, token counting, the cache of scored prefixes, the Math-Shepherd format and the fallback."""

from __future__ import annotations

import math

import pytest

from ponder.core.records import Step
from ponder.core.settings import load_settings
from ponder.graphs.verifiers.base import Trace, VerifyContext
from ponder.graphs.verifiers.prm import INSTRUCT, MATH_SHEPHERD, PRMVerifier, step_texts
from ponder.models.scripted import ScriptedModel


def steps_trace(answer: str | None = "18") -> Trace:
    steps = [Step(index=0, kind="action", thought="16 - 3 - 4 = 9 eggs are left."),
             Step(index=1, kind="action", thought="9 * 2 = 18 dollars."),
             Step(index=2, kind="final", thought="So she makes 18 dollars a day.")]
    return Trace(task="Janet's ducks lay 16 eggs...", steps=steps, final_answer=answer, status="solved")


def vctx(model) -> VerifyContext:
    return VerifyContext(model=model, settings=load_settings())


def lp(good: float, bad: float) -> list[float]:
    return [math.log(good), math.log(bad)]


def test_step_scores_min_aggregate_and_tokens() -> None:
    model = ScriptedModel([], option_logprobs=[lp(0.6, 0.2), lp(0.1, 0.3), lp(0.45, 0.05)])
    score = PRMVerifier().score(steps_trace(), vctx(model))
    assert score.per_step == pytest.approx([0.75, 0.25, 0.9])
    assert score.value == pytest.approx(0.25) and "min over 3 steps" in score.detail and "(step 2)" in score.detail
    prompts = [messages for messages, _ in model.option_calls]
    assert [options for _, options in model.option_calls] == [["+", "-"]] * 3
    assert score.model_calls == 3 and score.completion_tokens == 0
    assert score.prompt_tokens == sum(model.count_tokens(m) for m in prompts)


def test_each_prompt_holds_the_steps_so_far_one_a_line() -> None:
    model = ScriptedModel([])
    PRMVerifier().score(steps_trace(), vctx(model))
    texts = [messages[0]["content"] for messages, _ in model.option_calls]
    assert "Step 1: Thought: 16 - 3 - 4 = 9 eggs are left.\n\n" in texts[0] and "Step 2" not in texts[0]
    assert "Step 1: Thought: 16 - 3 - 4 = 9 eggs are left.\nStep 2: Thought: 9 * 2 = 18 dollars.\n" in texts[1]
    assert texts[2].count("\nStep ") == 3
    assert "\nStep 3: Thought: So she makes 18 dollars a day. | The answer is: 18\n" in texts[2]
    assert all("Janet's ducks" in t and 'Reply "+"' in t for t in texts)
    assert step_texts(Trace(task="t", final_answer="7")) == ["The answer is: 7"]


def test_score_steps_and_the_cache_of_scored_prefixes() -> None:
    model = ScriptedModel([], option_logprobs=[lp(0.5, 0.5), lp(0.8, 0.2), lp(0.3, 0.7), lp(0.9, 0.1)])
    verifier = PRMVerifier()
    partial = Trace(task="q", steps=steps_trace().steps[:2])
    assert verifier.score_steps(partial, vctx(model)) == pytest.approx([0.5, 0.8])
    grown = verifier.score(Trace(task="q", steps=steps_trace().steps), vctx(model))  # only step 3 is new
    assert grown.per_step == pytest.approx([0.5, 0.8, 0.3]) and grown.model_calls == 1
    assert "2 steps cached" in grown.detail and len(model.option_calls) == 3


def test_empty_trace_and_the_math_shepherd_format() -> None:
    empty = PRMVerifier().score(Trace(task="q"), vctx(ScriptedModel([])))
    assert (empty.value, empty.per_step, empty.model_calls) == (0.5, [], 0)
    assert PRMVerifier("openai:math-shepherd-mistral-7b-prm@http://h/v1").format is MATH_SHEPHERD
    assert PRMVerifier("embedded").format is INSTRUCT
    shepherd = PRMVerifier(format=MATH_SHEPHERD)
    [message] = shepherd.messages("How many?", ["a = 1", "b = 2"])
    assert message["content"] == "How many? Step 1: a = 1 ки\nStep 2: b = 2 ки"


def test_the_prm_spec_loads_its_own_model(write_script, tmp_path) -> None:
    spec = write_script(tmp_path / "prm.jsonl", "+")  # a scripted PRM: uniform option scores
    run_model = ScriptedModel([], option_logprobs=lambda m, o: pytest.fail("the run's model was asked"))
    score = PRMVerifier(spec).score(steps_trace(), vctx(run_model))
    assert score.per_step == pytest.approx([0.5, 0.5, 0.5]) and score.model_calls == 3


def test_fallback_samples_the_sign() -> None:
    model = ScriptedModel(["+", "The step is wrong: -", "hmm"], option_logprobs=False)
    score = PRMVerifier().score(steps_trace(), vctx(model))
    assert score.per_step == [1.0, 0.0, 0.5] and score.value == 0.0
    assert score.model_calls == 3 and score.completion_tokens == 1 + 5 + 1
    assert "no option log-probabilities: sampled, unparsed" in score.detail
