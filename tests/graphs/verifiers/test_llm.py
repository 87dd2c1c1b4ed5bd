"""The ``self`` verifier: the expected score digit under the model's next-token probabilities (scripted models),
its fallbacks when the backend cannot score options, and one run on the embedded model (``integration``)."""

from __future__ import annotations

import math

import pytest

from ponder.core.errors import ModelError
from ponder.core.records import Step
from ponder.core.settings import load_settings
from ponder.graphs.verifiers.base import Trace, VerifyContext
from ponder.graphs.verifiers.llm import DIGITS, SelfVerifier, ask_options
from ponder.graphs.verifiers.render import OBSERVATION_CHARS, clip
from ponder.models.base import LOGPROB_FLOOR, GenerationParams, ModelCapabilities
from ponder.models.scripted import ScriptedModel

LONG = "word " * 400


def trace(**kw) -> Trace:
    steps = [Step(index=0, kind="action", thought="I should search.", action="search", action_input="Paris",
                  observation=LONG),
             Step(index=1, kind="final", thought="Paris is the capital.")]
    return Trace(task="What is the capital of France?", steps=steps, **kw)


def vctx(model) -> VerifyContext:
    return VerifyContext(model=model, settings=load_settings())


def digit_logprobs(probs: dict[str, float]) -> list[float]:
    return [math.log(probs[d]) if d in probs else LOGPROB_FLOOR for d in DIGITS]


def test_value_is_the_expected_digit_over_the_digits_probabilities() -> None:
    probs = {"7": 0.5, "3": 0.25, "9": 0.05}  # mass 0.8: renormalized over the digits
    model = ScriptedModel([], option_logprobs=[digit_logprobs(probs)])
    score = SelfVerifier().score(trace(final_answer="Paris", status="solved"), vctx(model))
    expected = (0.5 * 7 + 0.25 * 3 + 0.05 * 9) / 0.8 / 9
    assert score.value == pytest.approx(expected, abs=1e-6)
    [(messages, options)] = model.option_calls
    assert options == list(DIGITS)
    assert (score.model_calls, score.completion_tokens) == (1, 0)
    assert score.prompt_tokens == model.count_tokens(messages) > 0
    assert "expected score" in score.detail and "likeliest 7" in score.detail and "0.80" in score.detail
    assert score.usage.model_calls == 1


def test_the_prompt_shows_the_task_and_a_compact_trajectory() -> None:
    model = ScriptedModel([])
    SelfVerifier().score(trace(), vctx(model))
    text = model.option_calls[0][0][0]["content"]
    assert "What is the capital of France?" in text and "in progress" in text
    assert "Thought: I should search." in text and "Action: search[Paris]" in text
    assert LONG.strip() not in text and clip(LONG, OBSERVATION_CHARS) in text and "chars cut" in text
    finished = ScriptedModel([])
    SelfVerifier().score(trace(final_answer="Paris", status="solved"), vctx(finished))
    shown = finished.option_calls[0][0][0]["content"]
    assert "finished: solved" in shown and "Final answer: Paris" in shown
    many = Trace(task="t", steps=[Step(index=i, kind="action", action="look") for i in range(30)])
    SelfVerifier(max_steps=5).score(many, vctx(few := ScriptedModel([])))
    assert "(25 earlier steps omitted)" in few.option_calls[0][0][0]["content"]


def test_uniform_and_massless_digits() -> None:
    assert SelfVerifier().score(trace(), vctx(ScriptedModel([]))).value == pytest.approx(0.5)  # mean of 0..9 / 9
    floor = ScriptedModel([], option_logprobs=[[LOGPROB_FLOOR] * 10])
    score = SelfVerifier().score(trace(), vctx(floor))
    assert score.value == 0.5 and "no probability" in score.detail and score.model_calls == 1


def test_fallback_parses_a_sampled_digit_and_never_crashes() -> None:
    model = ScriptedModel(["Score: 7 out of 9", "I cannot rate this.", ""], option_logprobs=False)
    first = SelfVerifier().score(trace(), vctx(model))
    assert first.value == pytest.approx(7 / 9) and "no option log-probabilities" in first.detail
    assert first.completion_tokens == 5 and first.prompt_tokens > 0 and first.model_calls == 1
    for _ in range(2):  # no digit at all: 0.5, said so
        bad = SelfVerifier().score(trace(), vctx(model))
        assert bad.value == 0.5 and "no digit" in bad.detail


def test_fallback_uses_a_grammar_when_the_backend_takes_one() -> None:
    seen: list[GenerationParams] = []

    class GrammarModel(ScriptedModel):
        def __init__(self) -> None:
            super().__init__(lambda messages, params: seen.append(params) or "8", option_logprobs=False)
            self.capabilities = ModelCapabilities(grammar=True)

    score = SelfVerifier().score(trace(), vctx(GrammarModel()))
    assert score.value == pytest.approx(8 / 9) and "grammar" in score.detail
    assert seen[0].grammar == 'root ::= "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9"'
    assert seen[0].temperature == 0


def test_a_backend_that_finds_out_it_cannot_score_falls_back() -> None:
    class NoLogprobServer(ScriptedModel):
        """Like an OpenAI-compatible server answering without log-probabilities: the first call turns it off."""

        def option_logprobs(self, messages, options):
            self.capabilities = self.capabilities.model_copy(update={"option_logprobs": False})
            raise ModelError("no log-probabilities")

    answer = ask_options(NoLogprobServer(["+"]), [{"role": "user", "content": "ok?"}], ["+", "-"])
    assert answer.probs == [1.0, 0.0] and answer.how == "sampled"

    class Down(ScriptedModel):
        def option_logprobs(self, messages, options):
            raise ModelError("cannot connect")

    with pytest.raises(ModelError, match="cannot connect"):  # a failing backend is not a bad reply
        SelfVerifier().score(trace(), vctx(Down([])))


@pytest.mark.integration
def test_self_verifier_on_the_embedded_model() -> None:
    from ponder.models.spec import load_model

    settings = load_settings(model="embedded", llamacpp_threads=2)
    model = load_model("embedded", settings)
    assert model.capabilities.option_logprobs
    ctx = VerifyContext(model=model, settings=settings)
    right = SelfVerifier().score(trace(final_answer="Paris", status="solved"), ctx)
    again = SelfVerifier().score(trace(final_answer="Paris", status="solved"), ctx)
    assert 0.0 <= right.value <= 1.0 and "expected score" in right.detail
    assert right.prompt_tokens == model.count_tokens(SelfVerifier().messages(trace(final_answer="Paris",
                                                                                  status="solved")))
    assert again.value == right.value  # the engine's scores are reproducible
