"""Next-token option scoring (``ModelBackend.option_logprobs``): the scripted model, the shared helpers, the
OpenAI top-list matching, and the llama.cpp engine path on the bundled SmolLM2 (``integration``)."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from ponder.chat.streaming import StreamingModel
from ponder.core.errors import DataError, ModelError
from ponder.models.base import (
    LOGPROB_FLOOR,
    BaseBackend,
    GenerationParams,
    Message,
    OptionLogprobs,
    first_token_ids,
    floored,
)
from ponder.models.batching import MicroBatcher
from ponder.models.openai_options import match_options
from ponder.models.scripted import ScriptedModel, ScriptExhaustedError

ASK: list[Message] = [{"role": "user", "content": "Is the sky blue? Answer yes or no."}]


# ---------------------------------------------------------------- no model


def test_scripted_lists_are_consumed_in_order_and_counted() -> None:
    model = ScriptedModel([], option_logprobs=[[-0.1, -2.5], [-3.0, float("-inf")]])
    assert model.capabilities.option_logprobs
    first = model.option_logprobs(ASK, ["yes", "no"])
    assert first == OptionLogprobs(logprobs=[-0.1, -2.5], prompt_tokens=model.count_tokens(ASK))
    assert model.option_logprobs(ASK, ["yes", "no"]).logprobs == [-3.0, LOGPROB_FLOOR]  # -inf floored
    assert model.option_calls == [(ASK, ["yes", "no"]), (ASK, ["yes", "no"])]
    with pytest.raises(ScriptExhaustedError):
        model.option_logprobs(ASK, ["yes", "no"])


def test_scripted_function_default_and_switched_off() -> None:
    by_fn = ScriptedModel([], option_logprobs=lambda messages, options: [-float(len(o)) for o in options])
    assert by_fn.option_logprobs(ASK, ["a", "bbb"]).logprobs == [-1.0, -3.0]
    uniform = ScriptedModel([]).option_logprobs(ASK, ["1", "2", "3", "4"])
    assert uniform.logprobs == pytest.approx([math.log(0.25)] * 4)
    off = ScriptedModel([], option_logprobs=False)
    assert not off.capabilities.option_logprobs
    with pytest.raises(ModelError, match="cannot score options"):
        off.option_logprobs(ASK, ["yes", "no"])
    with pytest.raises(DataError, match="do not match"):
        ScriptedModel([], option_logprobs=[[0.0]]).option_logprobs(ASK, ["yes", "no"])
    with pytest.raises(ModelError, match="distinct"):
        ScriptedModel([]).option_logprobs(ASK, ["yes", "yes"])


def test_base_backend_cannot_score_and_wrappers_pass_through() -> None:
    class Plain(BaseBackend):
        real = False

    assert not Plain().capabilities.option_logprobs
    with pytest.raises(ModelError, match="cannot score options"):
        Plain().option_logprobs(ASK, ["yes", "no"])
    inner = ScriptedModel([], option_logprobs=[[-1.0, -2.0], [-3.0, -4.0]])
    assert MicroBatcher(inner).option_logprobs(ASK, ["y", "n"]).logprobs == [-1.0, -2.0]
    assert StreamingModel(inner, lambda _: None).option_logprobs(ASK, ["y", "n"]).logprobs == [-3.0, -4.0]


def test_first_tokens_must_differ_and_floor_is_finite() -> None:
    vocab = {"yes": [5, 9], "no": [7], "yep": [5, 1], "": []}
    assert first_token_ids(["yes", "no"], vocab.__getitem__) == [5, 7]
    with pytest.raises(ModelError, match="'yes' and 'yep' begin with the same token"):
        first_token_ids(["yes", "yep"], vocab.__getitem__)
    with pytest.raises(ModelError, match="no tokens"):
        first_token_ids(["no", ""], vocab.__getitem__)
    with pytest.raises(ModelError, match="at least one"):
        first_token_ids([], vocab.__getitem__)
    assert floored([float("-inf"), float("nan"), -2e4, -0.5]) == [LOGPROB_FLOOR, LOGPROB_FLOOR, LOGPROB_FLOOR, -0.5]


def test_openai_top_list_matching() -> None:
    top = [("No", -0.2), (" no", -3.0), ("Yes", -1.9), ("1", -4.0), ("10", -5.0), ("Y", -6.0)]
    yes, no, one, ten, absent = match_options(top, ["Yes", "No", "1", "10", "maybe"])
    assert no == pytest.approx(math.log(math.exp(-0.2)))  # " no" is another token: case counts
    assert yes == pytest.approx(math.log(math.exp(-1.9) + math.exp(-6.0)))  # "Y" starts only "Yes"
    assert (one, ten) == (-4.0, -5.0)  # an exact token counts for its option only
    assert absent == LOGPROB_FLOOR
    assert match_options([(" no", -1.0), ("no", -1.0)], ["no", "yes"])[0] == pytest.approx(math.log(2 * math.exp(-1)))
    with pytest.raises(ModelError, match="distinct"):
        match_options(top, ["a", " a"])


# ---------------------------------------------------------------- real model (llama.cpp engine)


@pytest.fixture(scope="module")
def backend(llamacpp_backend: Any) -> Any:
    return llamacpp_backend


def _direct_logprobs(backend: Any, messages: list[Message], options: list[str]) -> list[float]:
    """The same scores from the backend's own single-sequence context: evaluate the prompt, read the last logits."""
    llama, lc = backend.llama, backend._llama_cpp
    prompt = backend._prompt_ids(messages)
    llama.reset()
    llama.eval(prompt)
    n_vocab = lc.llama_vocab_n_tokens(backend._vocab)
    logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(llama._ctx.ctx, -1), shape=(n_vocab,)).astype(np.float64)
    logsum = logits.max() + np.log(np.exp(logits - logits.max()).sum())
    ids = [llama.tokenize(o.encode(), add_bos=False, special=False)[0] for o in options]
    return [float(logits[i] - logsum) for i in ids]


@pytest.mark.integration
def test_llamacpp_option_logprobs_match_the_logits(backend: Any) -> None:
    assert backend.capabilities.option_logprobs
    scored = backend.option_logprobs(ASK, ["yes", "no"])
    assert scored.prompt_tokens == backend.count_tokens(ASK)
    assert all(math.isfinite(v) and v <= 0 for v in scored.logprobs)
    assert sum(math.exp(v) for v in scored.logprobs) <= 1.0
    assert scored.logprobs == pytest.approx(_direct_logprobs(backend, ASK, ["yes", "no"]), abs=1e-3)
    [greedy] = backend.generate(ASK, GenerationParams(temperature=0, max_tokens=1, logprobs=True))
    same = backend.option_logprobs(ASK, [greedy.text, "zebra"])  # the sampled token's logprob, same engine path
    assert same.logprobs[0] == pytest.approx(greedy.logprob, abs=1e-9) and same.logprobs[0] > same.logprobs[1]
    with pytest.raises(ModelError, match="same token"):
        backend.option_logprobs(ASK, ["yes", "yes please"])


@pytest.mark.integration
def test_llamacpp_option_logprobs_are_reproducible_next_to_generations(backend: Any) -> None:
    options = ["yes", "no", "Yes", "No"]
    alone = backend.option_logprobs(ASK, options).logprobs
    story: list[Message] = [{"role": "user", "content": "Write a long story about a dragon."}]
    engine = backend._engine()
    started = threading.Event()
    running = engine.submit(backend._prompt_ids(story), GenerationParams(temperature=0.8, max_tokens=40,
                                                                         stop=["<never>"]), 3,
                            on_text=lambda _: started.set())
    assert started.wait(120)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda _: backend.option_logprobs(ASK, options).logprobs, range(2)))
    running.result(timeout=120)
    deadline = time.monotonic() + 30
    while engine._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert together == [alone, alone]
