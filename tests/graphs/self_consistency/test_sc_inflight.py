"""Self-consistency on continuous-batching backends: direct calls, and early stopping that cancels samples in flight.

The fake backends answer by the sample's seed (sample ``i`` runs with seed ``i``); the blocking ones wait on the
sample's :class:`~ponder.models.cancel.CancelToken` (found with ``current_token()`` inside the model call, as the
llama.cpp engine does) and end with ``GenerationCancelled`` once it is cancelled.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from ponder.core.errors import GenerationCancelled
from ponder.core.settings import load_settings
from ponder.graphs.self_consistency import SCConfig, run_self_consistency
from ponder.models.base import BaseBackend, Completion, ModelCapabilities
from ponder.models.cancel import CancelToken, cancel_scope, current_token
from ponder.models.scripted import ScriptedModel

CALC = "Thought: compute\nAction: calculator\nAction Input: 6 * 7"


def settings(tmp_path):
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", tools=["calculator"])


class SeedBackend(BaseBackend):
    """A continuous-batching fake: ``reply(seed, turn, token)`` gives each call's text (``turn``: the seed's call
    number from 0); records threads and cancellations."""

    spec = "fake-continuous"
    backend_name = "fake"
    real = False
    capabilities = ModelCapabilities(batched_decoding=True, continuous_batching=True)

    def __init__(self, reply) -> None:
        self.reply = reply
        self.lock = threading.Lock()
        self.batch_calls: list[int] = []
        self.cancelled: list[int] = []
        self.threads: set[int] = set()
        self.turns: dict[int | None, int] = {}

    def generate(self, messages, params):
        token = current_token()
        assert token is not None, "every sample's model call runs inside its cancel scope"
        with self.lock:
            self.threads.add(threading.get_ident())
            turn = self.turns[params.seed] = self.turns.get(params.seed, -1) + 1
        try:
            text = self.reply(params.seed, turn, token)
        except GenerationCancelled:
            with self.lock:
                self.cancelled.append(params.seed)
            raise
        return [Completion(text=text, prompt_tokens=10, completion_tokens=5)]

    def generate_batch(self, conversations, params):
        self.batch_calls.append(len(conversations))
        return [self.generate(c, params) for c in conversations]


def block_until_cancelled(token: CancelToken, seconds: float = 20.0) -> None:
    """What an engine request does for a sample that would take long: end as soon as the token is cancelled."""
    if token.wait(seconds):
        raise GenerationCancelled("cancelled")
    raise AssertionError("the sample was never cancelled")


def test_continuous_backend_is_called_directly_and_concurrently(tmp_path):
    barrier = threading.Barrier(4, timeout=10)  # every sample must be in its model call at the same time

    def reply(seed, turn, token):
        if turn == 0:
            barrier.wait()
        return f"Final Answer: {40 + seed % 2}"

    backend = SeedBackend(reply)
    result = run_self_consistency("Q?", config=SCConfig(samples=4), settings=settings(tmp_path), model=backend,
                                  write=False)
    assert result.samples_run == 4 and result.final_answer == "40"
    assert result.batch_sizes == [] and backend.batch_calls == []  # no micro-batcher in between
    assert len(backend.threads) == 4
    assert [s.seed for s in result.samples] == [0, 1, 2, 3]  # each call kept its own seed


def test_settled_vote_cancels_samples_in_flight(tmp_path):
    in_flight = threading.Semaphore(0)

    def reply(seed, turn, token):
        if seed < 4:  # the agreeing samples answer once the others are blocked in their second call
            assert in_flight.acquire(timeout=10)
            return "Final Answer: 42"
        if turn == 0:
            return CALC  # one finished step: its tokens must count in the usage
        in_flight.release()
        block_until_cancelled(token)
        return "Final Answer: 7"

    backend = SeedBackend(reply)
    start = time.perf_counter()
    result = run_self_consistency("Q?", config=SCConfig(samples=8, early_stop=True), settings=settings(tmp_path),
                                  model=backend, write=False)
    assert time.perf_counter() - start < 10  # the blocked samples did not wait for their 20 s
    assert result.waves == 1  # continuous backend: every sample launched at once
    assert result.stop_reason == "settled" and result.final_answer == "42"
    assert result.samples_run == 4 and result.samples_discarded == 4 and result.samples_saved == 4
    assert sorted(backend.cancelled) == [4, 5, 6, 7]
    discarded = [s for s in result.samples if s.discarded]
    assert [s.index for s in discarded] == [4, 5, 6, 7]
    assert all(s.key is None for s in discarded)
    assert [len(s.trajectory.steps) for s in discarded] == [1] * 4
    assert [row.samples for row in result.votes] == [[0, 1, 2, 3]] and result.abstained == []
    assert result.usage.total_tokens == sum(s.usage.total_tokens for s in result.samples)
    assert result.usage.model_calls == 8  # 4 answers + the 4 finished calculator steps


def test_without_early_stop_nothing_is_cancelled(tmp_path):
    backend = SeedBackend(lambda seed, turn, token: f"Final Answer: {seed % 3}")
    result = run_self_consistency("Q?", config=SCConfig(samples=6), settings=settings(tmp_path), model=backend,
                                  write=False)
    assert result.samples_run == 6 and result.samples_discarded == 0 and backend.cancelled == []


def test_a_backend_that_ignores_the_token_stops_after_its_current_step(tmp_path):
    in_flight = threading.Semaphore(0)

    def respond(messages, params):
        if params.seed < 4:
            assert in_flight.acquire(timeout=10)
            return "Final Answer: 42"
        in_flight.release()
        token = current_token()
        assert token is not None and token.wait(20), "never cancelled"
        return CALC  # this backend finishes the call anyway

    model = ScriptedModel(respond, continuous=True)
    result = run_self_consistency("Q?", config=SCConfig(samples=8, early_stop=True), settings=settings(tmp_path),
                                  model=model, write=False)
    assert result.stop_reason == "settled" and result.samples_discarded == 4
    assert len(model.calls) == 8  # no sample asked the model again after it was cancelled
    assert all(len(s.trajectory.steps) == 1 for s in result.samples if s.discarded)


def test_waves_on_a_backend_without_continuous_batching_stay_halves(tmp_path):
    model = ScriptedModel(lambda messages, params: "Final Answer: 42")
    result = run_self_consistency("Q?", config=SCConfig(samples=8, early_stop=True), settings=settings(tmp_path),
                                  model=model, write=False)
    assert result.waves == 1 and result.samples_run == 4 and result.stop_reason == "settled"
    assert result.samples_discarded == 0  # the first wave of 4 settled it; the second never launched


def test_the_callers_cancel_scope_cancels_every_sample(tmp_path):
    backend = SeedBackend(lambda seed, turn, token: block_until_cancelled(token))
    outer = CancelToken()
    threading.Timer(0.3, outer.cancel).start()
    start = time.perf_counter()
    with cancel_scope(outer), pytest.raises(GenerationCancelled):
        run_self_consistency("Q?", config=SCConfig(samples=4), settings=settings(tmp_path), model=backend,
                             write=False)
    assert time.perf_counter() - start < 10 and sorted(backend.cancelled) == [0, 1, 2, 3]


@pytest.mark.parametrize("trial", range(12))
def test_cancelling_never_changes_a_certain_answer(tmp_path, trial):
    """Random answers and random call lengths: stopping with ``certain`` mid-flight gives the full run's winner."""
    rng = random.Random(trial)
    answers = {i: rng.choice(["1", "1", "1", "2", "2", "3", "none"]) for i in range(8)}
    delays = {i: rng.uniform(0.0, 0.05) for i in range(8)}

    def reply(seed, turn, token):
        if token.wait(delays[seed]):
            raise GenerationCancelled("cancelled")
        return "Thought: no idea" if answers[seed] == "none" else f"Final Answer: {answers[seed]}"

    s = settings(tmp_path).model_copy(update={"max_steps": 1})
    full = run_self_consistency("Q?", config=SCConfig(samples=8), settings=s, model=SeedBackend(reply), write=False)
    early = run_self_consistency("Q?", config=SCConfig(samples=8, early_stop=True), settings=s,
                                 model=SeedBackend(reply), write=False)
    assert early.winner_key == full.winner_key
    assert early.samples_run + early.samples_discarded == 8
    assert all(s.index not in row.samples for s in early.samples if s.discarded for row in early.votes)
