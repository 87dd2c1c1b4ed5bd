"""HumanEval best-of-N: N sampled completions, scored by the visible examples, the best one graded once.

``ponder eval humaneval --strategy best_of_n --samples N [--verifier execution|execution,self]``:

1. N completions are sampled, each with the settings of a self-consistency sample
   (:func:`~ponder.graphs.strategies.self_consistency.sample_settings`: the samples' temperature, 0.7 when the
   settings are greedy; seed ``seed + i``). The calls are made concurrently, so a continuous-batching backend
   (the llama.cpp engine, an ``openai:`` server) decodes them together; a backend that only decodes explicit
   batches gets them gathered by :class:`~ponder.models.batching.MicroBatcher`.
2. Each reply becomes a completion (:func:`~ponder.envs.code.completion_from_reply`) and is scored by the
   verifier (:func:`~ponder.graphs.verifiers.registry.build_verifier`; default ``execution``: the fraction of
   the docstring's visible examples it passes, run through the trusted grader in fresh sandbox sessions).
   The verifier sees the prompt and the completion only, never the dataset's hidden tests.
3. The best-scored completion (ties: the earlier sample) is graded **once** by the hidden tests, exactly as
   pass@1 grades its one completion. The result's ``pass`` metric is that verdict.

Every candidate is recorded as a trajectory (one ``program`` step; the observation is the verifier's detail,
the picked one's also the hidden tests' verdict; ``metadata["best_of_n_index"]``). The usage counts all N
generations, the verifier's model calls and tokens, and every sandbox session (the verifier's and the grading).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Step, Trajectory, Usage
from ponder.envs.base import Episode, EpisodeResult, EvalContext, FailureKind
from ponder.envs.code import ask_model, completion_from_reply, run_tests
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.strategies.best_of_n import run_parallel
from ponder.graphs.strategies.self_consistency import sample_settings
from ponder.graphs.verifiers.agreement import vote_shares
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.graphs.verifiers.examples import visible_examples
from ponder.graphs.verifiers.registry import build_verifier
from ponder.models.base import ModelBackend
from ponder.models.batching import MicroBatcher

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.tools.executor import CodeExecutor
    from ponder.tools.grading import GradeReport

#: The verifier when ``--verifier`` is not given: the visible examples, run in the sandbox.
DEFAULT_VERIFIER = "execution"


@dataclass
class CodeSample:
    """One sampled reply and the completion taken from it."""

    index: int
    reply: str
    completion: str | None
    usage: Usage


@dataclass
class SessionCounter:
    """A sandbox factory that counts the sessions it opens (the verifier's sandbox runs, for the usage)."""

    open_session: Callable[[], CodeExecutor]
    opened: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> CodeExecutor:
        """A fresh session of the wrapped factory."""
        with self._lock:
            self.opened += 1
        return self.open_session()


def open_verifier_sandbox(settings: Settings) -> CodeExecutor:
    """A fresh sandbox session for the verifier (the settings' sandbox; tests replace this with a spy)."""
    from ponder.tools.sandbox import open_sandbox

    return open_sandbox(settings)


def sample_replies(model: ModelBackend, ctx: EvalContext, prompt: str, entry_point: str) -> list[CodeSample]:
    """``ctx.spec.samples`` replies to ``prompt``, requested concurrently, each with its own seed."""
    spec = ctx.spec
    n = spec.samples
    config = SCConfig(samples=n, temperature=spec.sample_temperature, top_p=spec.sample_top_p,
                      seed=spec.sample_seed, batch_window=spec.batch_window)
    caps = model.capabilities
    backend: ModelBackend = model
    batcher = None
    if n > 1 and spec.batch and caps.batched_decoding and not caps.continuous_batching:
        batcher = MicroBatcher(model, window=config.batch_window, max_batch=n)
        batcher.enter(n)
        backend = batcher  # type: ignore[assignment]

    def sample(index: int) -> CodeSample:
        try:
            reply, usage = ask_model(backend, sample_settings(ctx.settings, config, index), prompt)
        finally:
            if batcher is not None:
                batcher.leave()
        return CodeSample(index, reply, completion_from_reply(reply, entry_point), usage)

    return run_parallel(list(range(n)), sample)


def score_samples(samples: list[CodeSample], prompt: str, entry_point: str,
                  ctx: EvalContext) -> tuple[str, list[Score], int]:
    """The verifier's name, its score of every sample and the sandbox sessions it opened.

    The verifier sees a trace of the prompt and the completion only (``answer_kind="code"``); the hidden tests
    are nowhere in it.
    """
    model = ctx.model
    assert model is not None  # run_best_of_n refuses to run without one
    verifier = build_verifier(ctx.spec.verifier or DEFAULT_VERIFIER, agent="humaneval", env=False,
                              prm=ctx.spec.prm)
    settings = ctx.settings
    sessions = SessionCounter(lambda: open_verifier_sandbox(settings))
    vctx = VerifyContext(model=model, settings=settings, answer_kind="code", executor=sessions,
                         votes=vote_shares([s.completion for s in samples], "code"), entry_point=entry_point)

    def score(sample: CodeSample) -> Score:
        trace = Trace(task=prompt, agent="humaneval", steps=[_step(sample)], final_answer=sample.completion,
                      status="solved" if sample.completion else "parse_error")
        return verifier.score(trace, vctx)

    scores = run_parallel(samples, score)
    return verifier.name, scores, sessions.opened


def _step(sample: CodeSample, observation: str | None = None, tool_seconds: float = 0.0) -> Step:
    usage = sample.usage
    return Step(index=0, kind="program", raw=sample.reply, observation=observation,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                model_seconds=usage.wall_seconds, tool_seconds=tool_seconds)


def _record(suite: str, episode: Episode, ctx: EvalContext, samples: list[CodeSample], scores: list[Score],
            picked: int, verdict: str, verifier: str) -> list[str]:
    """Write one trajectory per sample (the picked one with the hidden tests' verdict); their ids."""
    model = ctx.model
    assert model is not None
    ids = []
    for sample, score in zip(samples, scores, strict=True):
        observation = score.detail or f"verifier score {score.value:g}"
        if sample.index == picked:
            observation += f"\nhidden tests: {verdict}"
        traj = Trajectory(task=episode.task, agent="humaneval", model=model.spec, backend=model.backend_name,
                          steps=[_step(sample, observation)], final_answer=sample.completion,
                          status="solved" if sample.completion else "parse_error",
                          usage=sample.usage.model_copy(),
                          metadata={"suite": suite, "episode_id": episode.id, "best_of_n_index": sample.index,
                                    "verifier": verifier, "verifier_score": score.value,
                                    "picked": sample.index == picked})
        append_jsonl(Path(ctx.out_dir) / "trajectories.jsonl", traj)
        ids.append(traj.id)
    return ids


def run_best_of_n(suite: str, episode: Episode, ctx: EvalContext) -> EpisodeResult:
    """Sample N completions, score them by the verifier, grade the best-scored one by the hidden tests.

    Raises:
        ConfigError: without a model.
    """
    if ctx.model is None:
        raise ConfigError("humaneval --policy agent needs a model")
    meta = episode.metadata
    entry_point, test = meta["entry_point"], meta["test"]
    start = time.perf_counter()
    samples = sample_replies(ctx.model, ctx, episode.task, entry_point)
    verifier, scores, sessions = score_samples(samples, episode.task, entry_point, ctx)
    picked = max(range(len(samples)), key=lambda i: (scores[i].value, -i))
    completion = samples[picked].completion
    report = None if completion is None else run_tests(ctx.settings, episode.task, completion, test, entry_point)
    passed = report is not None and report.passed
    failure: FailureKind = "" if passed else ("no_answer" if report is None else "tests_failed")
    error = None if report is None or passed else report.summary(500)
    ids = _record(suite, episode, ctx, samples, scores, picked,
                  "passed" if passed else (error or "no code in the reply"), verifier)
    usage = _total_usage(samples, scores, tool_calls=sessions + int(report is not None))
    usage.wall_seconds = round(time.perf_counter() - start, 4)
    return EpisodeResult(
        episode_id=episode.id, suite=suite, task=episode.task, policy=ctx.policy, policy_kind="agent",
        success=passed, score=float(passed), metrics={"pass": float(passed)}, prediction=completion,
        status="solved" if passed else "failed", failure=failure, error=error, usage=usage,
        samples=len(samples), trajectory_ids=ids,
        metadata={"source": meta.get("source"), "kill_reason": _kill_reason(report), "n": len(samples),
                  "scores": [s.value for s in scores], "details": [s.detail for s in scores], "picked": picked,
                  "verifier": verifier, "visible_examples": len(visible_examples(episode.task, entry_point)),
                  "verifier_usage": sum((s.usage for s in scores), Usage()).model_dump()})


def _kill_reason(report: GradeReport | None) -> str | None:
    return report.kill_reason if report is not None else None


def _total_usage(samples: list[CodeSample], scores: list[Score], *, tool_calls: int) -> Usage:
    """Every generation's tokens and calls plus the verifier's, and the sandbox sessions opened."""
    usage = sum((s.usage for s in samples), Usage()) + sum((s.usage for s in scores), Usage())
    return usage.model_copy(update={"tool_calls": tool_calls})
