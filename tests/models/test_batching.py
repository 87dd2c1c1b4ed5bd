"""MicroBatcher: concurrent single calls become one backend batch; results go back to their callers."""

from __future__ import annotations

import threading
import time

import pytest

from ponder.core.errors import GenerationCancelled
from ponder.core.settings import load_settings
from ponder.graphs.self_consistency import SCConfig, run_self_consistency
from ponder.models.base import BaseBackend, Completion, GenerationParams, ModelCapabilities
from ponder.models.batching import MicroBatcher
from ponder.models.cancel import CancelToken, cancel_scope


class EchoBatchBackend(BaseBackend):
    """Answers each conversation with a text derived from it; records every batch it was given."""

    spec = "echo"
    real = False
    capabilities = ModelCapabilities(batched_decoding=True)

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.seeds: list[int | None] = []
        self.fail = fail

    def generate_batch(self, conversations, params):
        if self.fail:
            raise RuntimeError("boom")
        self.batches.append(len(conversations))
        self.seeds.append(params.seed)
        return [[Completion(text="Final Answer: " + str(len(c[-1]["content"])), prompt_tokens=3, completion_tokens=2)]
                for c in conversations]


def run_threads(batcher, prompts, params=None):
    params = params or GenerationParams()
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    batcher.enter(len(prompts))

    def worker(i, prompt):
        try:
            results[i] = batcher.generate([{"role": "user", "content": prompt}], params)[0].text
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            batcher.leave()

    threads = [threading.Thread(target=worker, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results, errors


def test_concurrent_calls_become_one_batch_and_answers_go_back_to_their_callers():
    backend = EchoBatchBackend()
    batcher = MicroBatcher(backend, window=2.0, max_batch=8)
    prompts = ["a" * n for n in range(1, 7)]
    results, errors = run_threads(batcher, prompts)
    assert not errors
    assert results == {i: f"Final Answer: {len(p)}" for i, p in enumerate(prompts)}
    assert backend.batches == [6]  # everyone waited for the slowest branch, not for the 2 s window
    assert batcher.batches == [6]


def test_max_batch_splits_and_seeds_use_the_lowest():
    backend = EchoBatchBackend()
    batcher = MicroBatcher(backend, window=2.0, max_batch=4)
    results, errors = run_threads(batcher, ["x"] * 8, GenerationParams(seed=5))
    assert not errors and len(results) == 8
    assert sorted(backend.batches) == [4, 4] and backend.seeds == [5, 5]


def test_calls_with_different_params_are_not_mixed():
    backend = EchoBatchBackend()
    batcher = MicroBatcher(backend, window=0.2)
    out: list[str] = []
    barrier = threading.Barrier(2)

    batcher.enter(2)

    def call(max_tokens):
        barrier.wait()
        try:
            params = GenerationParams(max_tokens=max_tokens)
            out.append(batcher.generate([{"role": "user", "content": "q"}], params)[0].text)
        finally:
            batcher.leave()

    threads = [threading.Thread(target=call, args=(m,)) for m in (10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 2 and sorted(backend.batches) == [1, 1]


def test_backend_errors_reach_every_caller_in_the_batch():
    batcher = MicroBatcher(EchoBatchBackend(fail=True), window=1.0)
    results, errors = run_threads(batcher, ["a", "b", "c"])
    assert not results and len(errors) == 3 and all("boom" in str(e) for e in errors)


def test_a_lone_caller_waits_at_most_the_window():
    backend = EchoBatchBackend()
    batcher = MicroBatcher(backend, window=0.01)
    batcher.enter(2)  # a second branch that never calls
    assert batcher.generate([{"role": "user", "content": "abc"}], GenerationParams())[0].text == "Final Answer: 3"
    assert backend.batches == [1]


def test_self_consistency_batches_its_samples_and_gets_the_unbatched_answers(tmp_path):
    settings = load_settings(out_dir=tmp_path, tools=["calculator"])
    batched_backend, plain_backend = EchoBatchBackend(), EchoBatchBackend()
    batched = run_self_consistency("How much?", config=SCConfig(samples=6, batch_window=2.0), settings=settings,
                                   model=batched_backend, write=False)
    plain = run_self_consistency("How much?", config=SCConfig(samples=6, batch=False), settings=settings,
                                 model=plain_backend, write=False)
    assert [s.trajectory.final_answer for s in batched.samples] == [s.trajectory.final_answer for s in plain.samples]
    assert batched.batch_sizes == [6] and batched_backend.batches == [6]
    assert plain.batch_sizes == [] and plain_backend.batches == [1] * 6


class ContinuousBackend(EchoBatchBackend):
    """Decodes concurrent calls together by itself (like the llama.cpp engine): the batcher must not gather them."""

    capabilities = ModelCapabilities(batched_decoding=True, continuous_batching=True)


def test_calls_to_a_continuous_backend_pass_straight_through_with_their_own_seeds():
    backend = ContinuousBackend()
    batcher = MicroBatcher(backend, window=2.0, max_batch=8)
    batcher.enter(3)
    seeds = {}

    def worker(seed):
        try:
            seeds[seed] = batcher.generate([{"role": "user", "content": "x" * seed}], GenerationParams(seed=seed))
        finally:
            batcher.leave()

    threads = [threading.Thread(target=worker, args=(s,)) for s in (3, 5, 7)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert time.perf_counter() - start < 1.5  # nobody waited for the 2 s window
    assert batcher.batches == [] and backend.batches == [1, 1, 1]
    assert sorted(backend.seeds) == [3, 5, 7]  # every call kept its seed (a batch would run with the lowest)
    assert {s: c[0].text for s, c in seeds.items()} == {3: "Final Answer: 3", 5: "Final Answer: 5",
                                                        7: "Final Answer: 7"}


def test_a_call_in_a_cancelled_scope_is_not_queued():
    backend = EchoBatchBackend()
    batcher = MicroBatcher(backend, window=0.01)
    token = CancelToken()
    token.cancel()
    with cancel_scope(token), pytest.raises(GenerationCancelled):
        batcher.generate([{"role": "user", "content": "abc"}], GenerationParams())
    assert backend.batches == [] and batcher.batches == []


def test_self_consistency_does_not_batch_for_a_continuous_backend(tmp_path):
    settings = load_settings(out_dir=tmp_path, tools=["calculator"])
    backend = ContinuousBackend()
    result = run_self_consistency("How much?", config=SCConfig(samples=6, batch_window=2.0), settings=settings,
                                  model=backend, write=False)
    assert result.samples_run == 6 and result.batch_sizes == [] and backend.batches == [1] * 6
    assert sorted(backend.seeds) == list(range(6))


@pytest.mark.integration
def test_transformers_batched_samples_match_unbatched_under_greedy(tmp_path):
    """The real embedded model through transformers: greedy SC samples are the same texts batched or not."""
    from ponder.models.spec import load_model

    settings = load_settings(model="transformers", out_dir=tmp_path, tools=["calculator"], max_tokens=24,
                             max_steps=1)
    backend = load_model("transformers", settings)
    config = dict(samples=3, temperature=0.0)
    batched = run_self_consistency("What is 2 + 3?", config=SCConfig(**config, batch_window=5.0), settings=settings,
                                   model=backend, write=False)
    plain = run_self_consistency("What is 2 + 3?", config=SCConfig(**config, batch=False), settings=settings,
                                 model=backend, write=False)
    assert batched.batch_sizes and max(batched.batch_sizes) == 3
    texts = [[st.raw for st in s.trajectory.steps] for s in batched.samples]
    assert texts == [[st.raw for st in s.trajectory.steps] for s in plain.samples]
    assert all(t == texts[0] for t in texts)  # greedy: every sample identical
