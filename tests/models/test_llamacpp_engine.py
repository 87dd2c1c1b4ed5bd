"""The continuous-batching llama.cpp engine: admission, early finish, seeds, prefix reuse, cancellation, errors.

The tests under "no model" check the KV-cell accounting and the sampler; the others run the bundled SmolLM2 GGUF
(``integration``) with small ``max_tokens``.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from ponder.core.errors import GenerationCancelled, ModelError
from ponder.models.base import GenerationParams, Message
from ponder.models.cancel import CancelToken, cancel_scope
from ponder.models.llamacpp_decode import pick_token
from ponder.models.llamacpp_engine import cells_per_slot
from ponder.models.llamacpp_turn import prompt_chunk

SYSTEM = "You are a careful assistant. " + " ".join(f"Rule {i}: answer briefly and check your work." for i in range(8))
STORY: list[Message] = [{"role": "user", "content": "Write a long story about a dragon and a knight."}]
NEVER = ["<never-appears>"]


def _conversation(question: str) -> list[Message]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


OTHERS = [_conversation(q) for q in ("Name three colors.", "What is 2+2?", "Describe the sea.", "List some fruit.",
                                     "Why is the sky blue?", "Count to five.", "Name a planet.")]


# ---------------------------------------------------------------- no model


def test_each_slot_gets_a_padded_share_of_the_cells() -> None:
    assert cells_per_slot(8, 8 * 4096) == 4096
    assert cells_per_slot(3, 2000) == 512  # 666 rounded down to llama.cpp's 256-cell padding
    assert cells_per_slot(8, 100) == 256  # never below one padding unit


def test_prompt_chunks_leave_the_last_token_alone_and_no_single_body_token() -> None:
    assert prompt_chunk(1, 512) == 1 and prompt_chunk(1, 0) == 0
    assert prompt_chunk(600, 512) == 512 and prompt_chunk(600, 598) == 597  # never one body token left over
    assert prompt_chunk(100, 512) == 99  # the body; the last token gets its own turn
    assert prompt_chunk(5, 3) == 2 and prompt_chunk(5, 1) == 0
    assert prompt_chunk(2, 512) == 1  # a two-token prompt cannot pair its first token


def test_inverse_cdf_draws_follow_the_softmax() -> None:
    logits = np.array([0.0, 2.0, 1.0, -np.inf], dtype=np.float32)
    params = GenerationParams(temperature=0.5)
    rng = np.random.default_rng(5)
    draws = np.bincount([pick_token(logits, params, rng)[0] for _ in range(6000)], minlength=4) / 6000
    scaled = np.exp(logits[:3] / 0.5 - 4.0)
    assert draws[3] == 0
    assert np.allclose(draws[:3], scaled / scaled.sum(), atol=0.02)


# ---------------------------------------------------------------- real model

integration = pytest.mark.integration


@pytest.fixture(scope="module")
def backend(llamacpp_backend: Any) -> Any:
    return llamacpp_backend


@pytest.fixture
def engine(backend: Any) -> Any:
    engine = backend._engine()
    _wait_idle(engine)
    return engine


def _wait_idle(engine: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while engine._running or engine._queue:
        assert time.monotonic() < deadline, "the engine did not become idle"
        time.sleep(0.01)


def _first_text(request: Any, seen: threading.Event, timeout: float = 60) -> None:
    assert seen.wait(timeout), "no text streamed"
    assert not request.done()


@integration
def test_admission_while_others_decode(backend: Any, engine: Any) -> None:
    long = GenerationParams(temperature=0.8, max_tokens=60, stop=NEVER)
    started = threading.Event()
    first = [engine.submit(backend._prompt_ids(STORY), long, seed, on_text=lambda _: started.set()) for seed in (1, 2)]
    _first_text(first[0], started)
    late = engine.submit(backend._prompt_ids(OTHERS[0]), GenerationParams(max_tokens=3), None)
    late.result(timeout=120)
    assert not any(r.done() for r in first), "the late request waited for the running ones"
    assert all(r.result(timeout=120).completion_tokens == 60 for r in first)
    assert engine.stats["most_running"] >= 3


@integration
def test_short_sequence_returns_while_the_long_one_runs(backend: Any, engine: Any) -> None:
    long = engine.submit(backend._prompt_ids(STORY), GenerationParams(max_tokens=48, stop=NEVER), None)
    short = engine.submit(backend._prompt_ids(OTHERS[1]), GenerationParams(max_tokens=2), None)
    assert short.result(timeout=120).completion_tokens == 2
    assert not long.done()
    assert long.result(timeout=120).completion_tokens == 48


@integration
def test_same_seed_same_text_alone_and_batched(backend: Any, engine: Any) -> None:
    params = GenerationParams(temperature=0.8, max_tokens=48, seed=123)
    target = _conversation("Tell me about rivers.")
    engine.forget()
    [alone] = backend.generate(target, params)
    for others in (3, 7):
        engine.forget()
        busy = [engine.submit(backend._prompt_ids(c), params.model_copy(update={"max_tokens": 64}), 7 + i)
                for i, c in enumerate(OTHERS[:others])]
        time.sleep(0.2)  # they are decoding when the target arrives
        [batched] = backend.generate(target, params)
        for r in busy:
            r.result(timeout=120)
        assert batched.text == alone.text, f"with {others} others"


@integration
def test_prefix_reuse_and_sharing(backend: Any, engine: Any) -> None:
    params = GenerationParams(temperature=0, max_tokens=4)
    engine.forget()
    question = _conversation("What is 2+2?")
    first = backend.generate(question, params)[0]
    full = len(backend._prompt_ids(question))
    assert engine.stats["last_prefill"] == {"reused": 0, "copied": 0, "restored": 0, "evaluated": full}
    follow = question + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And 3+3?"}]
    backend.generate(follow, params)
    assert engine.stats["last_prefill"]["reused"] >= full - 2
    # Eight samples of one new prompt: one evaluates the shared prompt, the others share its cells.
    engine.forget()
    evaluated = engine.stats["prompt_evaluated"]
    prompt = backend._prompt_ids(_conversation("Name a river."))
    backend.generate(_conversation("Name a river."), GenerationParams(temperature=0.7, max_tokens=3, n=8, seed=1))
    assert engine.stats["prompt_evaluated"] - evaluated <= len(prompt) + 8


@integration
def test_cancel_frees_the_slot(backend: Any, engine: Any) -> None:
    seen = threading.Event()
    request = engine.submit(backend._prompt_ids(STORY), GenerationParams(max_tokens=300, stop=NEVER), None,
                            on_text=lambda _: seen.set())
    _first_text(request, seen)
    cancelled = engine.stats["cancelled"]
    request.cancel()
    with pytest.raises(GenerationCancelled):
        request.result(timeout=60)
    assert engine.stats["cancelled"] == cancelled + 1
    _wait_idle(engine)
    assert not any(slot.busy for slot in engine.slots)
    assert backend.generate(OTHERS[2], GenerationParams(max_tokens=3))[0].completion_tokens == 3


@integration
def test_closing_a_stream_early_cancels_it(backend: Any, engine: Any) -> None:
    stream = backend.stream(STORY, GenerationParams(max_tokens=300, stop=NEVER))
    next(stream)
    next(stream)
    cancelled = engine.stats["cancelled"]
    stream.close()
    _wait_idle(engine)
    assert engine.stats["cancelled"] == cancelled + 1
    assert not any(slot.busy for slot in engine.slots)


@integration
def test_a_cancelled_scope_cancels_generate(backend: Any, engine: Any) -> None:
    token = CancelToken()
    errors: list[BaseException] = []

    def run() -> None:
        with cancel_scope(token):
            try:
                backend.generate(STORY, GenerationParams(max_tokens=400, stop=NEVER, temperature=0.8, n=2))
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    token.cancel()
    thread.join(timeout=60)
    assert not thread.is_alive() and len(errors) == 1 and isinstance(errors[0], GenerationCancelled)
    _wait_idle(engine)
    assert not any(slot.busy for slot in engine.slots)


@integration
def test_an_error_fails_only_its_request(backend: Any, engine: Any) -> None:
    good = [engine.submit(backend._prompt_ids(c), GenerationParams(max_tokens=4), None) for c in OTHERS[:2]]
    bad_grammar = engine.submit(backend._prompt_ids(OTHERS[2]), GenerationParams(grammar="root ::= ("), None)
    too_long = engine.submit(list(backend._prompt_ids(OTHERS[3])) * 200, GenerationParams(max_tokens=4), None)
    more = engine.submit(backend._prompt_ids(OTHERS[4]), GenerationParams(max_tokens=4), None)
    with pytest.raises(ModelError, match="grammar"):
        bad_grammar.result(timeout=60)
    with pytest.raises(ModelError, match="the prompt has"):
        too_long.result(timeout=60)
    assert all(r.result(timeout=60).completion_tokens == 4 for r in [*good, more])


@integration
def test_grammar_constrains_one_request_among_free_ones(backend: Any, engine: Any) -> None:
    params = GenerationParams(max_tokens=8, temperature=0.8, seed=3)
    free = engine.submit(backend._prompt_ids(OTHERS[0]), params, 3)
    constrained = params.model_copy(update={"grammar": 'root ::= "yes" | "no"'})
    yes_no = engine.submit(backend._prompt_ids(OTHERS[1]), constrained, 3)
    assert yes_no.result(timeout=60).text in ("yes", "no")
    assert free.result(timeout=60).completion_tokens > 0


@integration
def test_many_threads_calling_generate(backend: Any, engine: Any) -> None:
    params = GenerationParams(temperature=0.8, max_tokens=8)
    before = engine.stats["finished"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        out = list(pool.map(lambda i: backend.generate(OTHERS[i % 7], params.model_copy(update={"seed": i}))[0],
                            range(12)))
    assert len(out) == 12 and all(c.completion_tokens > 0 for c in out)
    assert engine.stats["finished"] - before == 12


@integration
def test_small_slots_queue_and_fail_clearly(backend: Any) -> None:
    from ponder.models.llamacpp_engine import Engine

    lc, vocab = backend._llama_cpp, backend._vocab
    small = Engine(lc, backend.llama.model, vocab, slots=2, kv_cells=512, n_threads=1,
                   base_params=backend.llama.context_params, piece=backend._piece,
                   is_eog=lambda t: bool(lc.llama_vocab_is_eog(vocab, t)))
    try:
        assert small.n_ctx_seq == 256
        prompt = backend._prompt_ids(OTHERS[0])
        params = GenerationParams(max_tokens=400, stop=NEVER)
        three = [small.submit(backend._prompt_ids(c), params, i) for i, c in enumerate(OTHERS[:3])]
        done = [r.result(timeout=120) for r in three]
        assert all(c.prompt_tokens + c.completion_tokens <= 256 and c.completion_tokens > 0 for c in done)
        assert small.stats["most_running"] == 2  # the third waited for a free slot
        with pytest.raises(ModelError, match=r"the prompt has \d+ tokens but a llamacpp engine slot holds 256"):
            small.submit(prompt * 4, GenerationParams(max_tokens=8), None).result(timeout=60)
    finally:
        small.close()
    with pytest.raises(ModelError, match="closed"):
        small.submit(prompt, GenerationParams(max_tokens=2), None)


@integration
def test_unified_kv_mode_shares_the_prompt(backend: Any) -> None:
    from ponder.models.llamacpp_engine import Engine

    lc, vocab = backend._llama_cpp, backend._vocab
    shared = Engine(lc, backend.llama.model, vocab, slots=4, kv_cells=4096, n_threads=1, unified=True,
                    base_params=backend.llama.context_params, piece=backend._piece,
                    is_eog=lambda t: bool(lc.llama_vocab_is_eog(vocab, t)))
    try:
        assert shared.context_params.kv_unified and shared.n_ctx_seq == 1024
        prompt = backend._prompt_ids(OTHERS[3])
        four = [shared.submit(prompt, GenerationParams(temperature=0.8, max_tokens=6), i) for i in range(4)]
        assert all(r.result(timeout=120).completion_tokens > 0 for r in four)
        assert shared.stats["prompt_evaluated"] <= len(prompt) + 4 and shared.stats["copied"] >= 3 * (len(prompt) - 1)
    finally:
        shared.close()


class _FakeRequest:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error, self.cancelled = error, False

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return "done"

    def cancel(self) -> None:
        self.cancelled = True


def test_interrupt_or_failure_while_waiting_cancels_every_request() -> None:
    from ponder.models.llamacpp import LlamaCppBackend

    for error in (KeyboardInterrupt(), ModelError("boom")):
        requests = [_FakeRequest(), _FakeRequest(error), _FakeRequest()]
        with pytest.raises(type(error)):
            LlamaCppBackend._collect(requests)  # type: ignore[arg-type]
        assert all(r.cancelled for r in requests)
    token = CancelToken()
    waiting = [_FakeRequest(), _FakeRequest()]
    token.cancel()
    with cancel_scope(token):
        assert LlamaCppBackend._collect(waiting) == ["done", "done"]  # type: ignore[arg-type]
    assert all(r.cancelled for r in waiting)  # a cancelled scope cancels the call's requests


@integration
def test_a_failing_stream_consumer_and_random_cancels_leave_the_engine_healthy(backend: Any, engine: Any) -> None:
    def broken(_: str) -> None:
        raise RuntimeError("consumer bug")

    params = GenerationParams(temperature=0.8, max_tokens=24, stop=NEVER)
    bad = engine.submit(backend._prompt_ids(OTHERS[5]), params, 1, on_text=broken)
    storm = [engine.submit(backend._prompt_ids(OTHERS[i % 7]), params, i) for i in range(12)]
    for i, r in enumerate(storm):
        if i % 3 == 0:
            time.sleep(0.05 * i / 3)
            r.cancel()
    with pytest.raises(ModelError, match="consumer bug"):
        bad.result(timeout=120)
    for i, r in enumerate(storm):
        try:
            done = r.result(timeout=120)
            assert done.completion_tokens == 24 or done.finish_reason == "stop"
        except GenerationCancelled:
            assert i % 3 == 0
    _wait_idle(engine)
    assert not any(slot.busy for slot in engine.slots)
    assert backend.generate(OTHERS[6], GenerationParams(max_tokens=3))[0].completion_tokens == 3


@integration
def test_same_seed_same_text_whether_the_prompt_was_evaluated_reused_or_copied(backend: Any, engine: Any) -> None:
    prompt = backend._prompt_ids(_conversation("Sara has 4 boxes of 12 pencils. How many pencils?"))
    params = GenerationParams(temperature=0.8, max_tokens=24, stop=NEVER)
    fresh = []
    for seed in range(4):
        engine.forget()
        fresh.append(engine.submit(prompt, params, seed).result(timeout=120).text)
    engine.forget()
    together = [engine.submit(prompt, params, seed) for seed in range(4)]  # one evaluates, three copy its cells
    assert [r.result(timeout=120).text for r in together] == fresh
    assert sum(r.prefill["copied"] > 0 for r in together) == 3
    again = [engine.submit(prompt, params, seed).result(timeout=120).text for seed in range(4)]  # reused slots
    assert again == fresh
