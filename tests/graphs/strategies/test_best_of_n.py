"""``BestOfN`` on a scripted model: the verifier picks (not the majority), weighted votes, env episodes, memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from ponder.core.errors import ConfigError
from ponder.core.records import Trajectory
from ponder.graphs.strategies.base import Outcome, StrategyContext
from ponder.graphs.strategies.best_of_n import BestOfN
from ponder.graphs.strategies.single import Single
from ponder.graphs.strategies.trials import WithMemory
from ponder.graphs.verifiers.agreement import AgreementVerifier
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.models.scripted import ScriptedModel

TASK = "What is 6 times 7?"
#: What sample i answers (its seed is i: the settings' seed is 0).
BY_SEED = {0: "41", 1: "41", 2: "42", 3: "41"}


def by_seed(messages, params) -> str:
    if "Reply with the lesson only." in messages[-1]["content"]:
        return f"Reflection: check the product (seed {params.seed})."
    return f"Thought: multiply.\nFinal Answer: {BY_SEED[params.seed]}"


@dataclass
class Table:
    """A scripted verifier: a score per answer, 5 prompt tokens and one model call per score."""

    values: dict[str, float]
    name: str = "table"
    seen: list[Trace] = field(default_factory=list)
    votes: list[dict[str, float] | None] = field(default_factory=list)

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        self.seen.append(trace)
        self.votes.append(ctx.votes)
        return Score(value=self.values.get(trace.final_answer or "", 0.0), prompt_tokens=5, completion_tokens=1,
                     model_calls=1, detail=f"answer {trace.final_answer}")


def context(settings, model, **kw) -> StrategyContext:
    return StrategyContext(settings=settings, model=model, answer_kind="number", **kw)


def test_the_verifiers_favourite_wins_not_the_majority(settings):
    model = ScriptedModel(by_seed)
    verifier = Table({"41": 0.3, "42": 0.9})
    outcome = BestOfN(Single(), 3, verifier).run(TASK, context(settings, model))
    assert outcome.kind == "best_of_n" and outcome.answer == "42" and outcome.status == "solved"
    assert outcome.metadata["picked"] == 2 and outcome.metadata["scores"] == [0.3, 0.3, 0.9]
    assert outcome.trajectory is outcome.trajectories[2] and outcome.trajectory.metadata["verifier_score"] == 0.9
    assert [c.answer for c in outcome.candidates] == ["42", "41", "41"]
    assert [c.trajectories for c in outcome.candidates] == [[2], [0], [1]]
    assert sorted(t.final_answer for t in verifier.seen) == ["41", "41", "42"]
    runs = sum(t.usage.prompt_tokens for t in outcome.trajectories)
    assert outcome.usage.prompt_tokens == runs + 3 * 5  # every verifier call counts
    assert outcome.usage.model_calls == 3 + 3


def test_ties_go_to_the_earlier_sample(settings):
    outcome = BestOfN(Single(), 3, Table({"41": 0.5, "42": 0.5})).run(TASK, context(settings, ScriptedModel(by_seed)))
    assert outcome.metadata["picked"] == 0 and outcome.answer == "41"


def test_weighted_vote_sums_scores_per_normalized_answer(settings):
    model = ScriptedModel(by_seed)
    heavy = BestOfN(Single(), 3, Table({"41": 0.5, "42": 0.9}), vote=True).run(TASK, context(settings, model))
    assert heavy.answer == "41" and heavy.metadata["picked"] == 0  # 0.5 + 0.5 beats 0.9 (the best single score)
    assert [(c.answer, c.score, c.trajectories) for c in heavy.candidates] == [("41", 1.0, [0, 1]), ("42", 0.9, [2])]
    light = BestOfN(Single(), 3, Table({"41": 0.3, "42": 0.9}), vote=True).run(TASK, context(settings, model))
    assert light.answer == "42" and [c.key for c in light.candidates] == ["42", "41"]


def test_agreement_gets_the_votes_of_all_samples(settings):
    table = Table({})
    BestOfN(Single(), 4, table).run(TASK, context(settings, ScriptedModel(by_seed)))
    assert table.votes == [{"41": 0.75, "42": 0.25}] * 4
    outcome = BestOfN(Single(), 4, AgreementVerifier()).run(TASK, context(settings, ScriptedModel(by_seed)))
    assert outcome.answer == "41" and outcome.metadata["scores"] == [0.75, 0.75, 0.25, 0.75]
    assert outcome.metadata["verifier"] == "agreement"


def test_samples_run_concurrently_with_their_own_seeds(settings):
    barrier = threading.Barrier(3, timeout=10)  # breaks unless all three samples call the model at once
    seeds = []

    def reply(messages, params):
        seeds.append((params.seed, params.temperature))
        barrier.wait()
        return by_seed(messages, params)

    model = ScriptedModel(reply, continuous=True)
    outcome = BestOfN(Single(), 3, Table({"42": 1.0})).run(TASK, context(settings, model))
    assert sorted(seeds) == [(0, 0.7), (1, 0.7), (2, 0.7)] and outcome.answer == "42"
    assert [t.metadata["sample"] for t in outcome.trajectories] == [0, 1, 2]


def test_a_broken_sample_abstains(settings):
    def reply(messages, params):
        if params.seed == 1:
            raise RuntimeError("boom")
        return by_seed(messages, params)

    outcome = BestOfN(Single(), 3, Table({"41": 0.2, "42": 0.8})).run(TASK, context(settings, ScriptedModel(reply)))
    assert outcome.answer == "42" and outcome.trajectories[1].status == "error"
    assert "boom" in (outcome.trajectories[1].error or "")


def test_only_the_picked_samples_memory_reaches_the_store(settings, store):
    ctx = context(settings, ScriptedModel(by_seed), store=store, task_family="toy")
    strategy = WithMemory(BestOfN(Single(), 3, Table({"41": 0.1, "42": 0.2})), "reflexion")
    outcome = strategy.run(TASK, ctx, label="43")  # every sample is wrong: each writes a reflection, held
    memory = outcome.metadata["memory"]
    assert memory["from_sample"] == 2 and memory["discarded"] >= 2
    (lesson,) = store.list("reflection")
    assert lesson.text.endswith("(seed 2).")


class EnvPlayer:
    """An inner strategy playing ``ctx.env``: it wins with seed 1 only (each run makes its own env)."""

    def __init__(self) -> None:
        self.envs = 0
        self.lock = threading.Lock()

    def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
        assert ctx.env is not None
        ctx.env()
        with self.lock:
            self.envs += 1
        won = ctx.settings.seed == 1
        traj = Trajectory(task=task, agent="env", model="m", status="solved" if won else "max_steps",
                          final_answer="won" if won else None, metadata={"reward": 1.0 if won else 0.5})
        return Outcome(kind="single", task=task, answer=traj.final_answer, status=traj.status, trajectories=[traj],
                       chosen=0)


def test_env_samples_play_fresh_envs_and_a_won_one_wins(settings):
    player = EnvPlayer()
    liar = Table({"": 1.0, "won": 0.1})  # the verifier prefers the unfinished runs; the env's verdict decides
    ctx = context(settings, ScriptedModel([]), env=lambda: object(), max_reward=1.0)
    outcome = BestOfN(player, 3, liar).run("play", ctx)
    assert player.envs == 3 and outcome.metadata["picked"] == 1 and outcome.status == "solved"
    env_scores = BestOfN(EnvPlayer(), 3).run("play", ctx).metadata  # default verifier in envs: env
    assert env_scores["verifier"] == "env" and env_scores["scores"] == [pytest.approx(0.45), 1.0, pytest.approx(0.45)]


def test_bad_n_is_refused():
    with pytest.raises(ConfigError):
        BestOfN(Single(), 0)
