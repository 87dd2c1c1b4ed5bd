"""The env and agreement verifiers, the weighted combination and the registry (no model, no sandbox)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from ponder.core.errors import ConfigError
from ponder.core.records import Step, Trajectory
from ponder.core.settings import load_settings
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.verifiers.agreement import AgreementVerifier, vote_shares
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.graphs.verifiers.combine import Combined
from ponder.graphs.verifiers.env import EnvVerifier
from ponder.graphs.verifiers.execution import ExecutionVerifier
from ponder.graphs.verifiers.registry import build_verifier, verify_context
from ponder.models.scripted import ScriptedModel


def vctx(**kw) -> VerifyContext:
    return VerifyContext(model=ScriptedModel([]), settings=load_settings(), **kw)


def env_trace(**kw) -> Trace:
    return Trace(task="find the key", agent="env", steps=[Step(index=0, kind="action", action="look")], **kw)


def test_env_won_lost_and_progress():
    v = EnvVerifier()
    assert v.score(env_trace(status="solved", won=True, done=True, reward=3), vctx()).value == 1.0
    lost = v.score(env_trace(status="error", won=False, done=True, reward=2, max_reward=4), vctx())
    assert lost.value == 0.0 and "lost" in lost.detail
    half = v.score(env_trace(reward=2, max_reward=4), vctx())  # partial: 0.9 x 2/4
    assert half.value == pytest.approx(0.45) and "so far" in half.detail
    capped = v.score(env_trace(status="max_steps", won=False, reward=9, max_reward=4), vctx())
    assert capped.value == pytest.approx(0.9)  # progress never reaches a win
    squashed = v.score(env_trace(reward=1), vctx())  # most reward unknown: 0.9 x 1/(1+1)
    assert squashed.value == pytest.approx(0.45) and "unknown" in squashed.detail
    assert v.score(env_trace(reward=3), vctx()).value > squashed.value
    assert v.score(env_trace(reward=-1, max_reward=4), vctx()).value == 0.0
    assert v.score(Trace(task="q", final_answer="4", status="solved"), vctx()).value == 0.5


def test_env_trace_from_a_trajectory():
    traj = Trajectory(task="t", agent="env", model="m", status="solved", final_answer="won", metadata={"reward": 1})
    trace = Trace.from_trajectory(traj, max_reward=1)
    assert EnvVerifier().score(trace, vctx()).value == 1.0


def test_vote_shares_normalize_and_count_abstentions():
    shares = vote_shares(["1,000", "1000.0", "7", None], "number")
    assert shares == {"1000": 0.5, "7": 0.25}
    assert vote_shares([], "number") == {}


def test_agreement_is_the_share_of_the_normalized_answer():
    v = AgreementVerifier()
    votes = vote_shares(["$12", "12", "13"], "number")
    assert v.score(Trace(task="q", final_answer="12.0", status="solved"), vctx(answer_kind="number",
                                                                             votes=votes)).value == pytest.approx(2 / 3)
    assert v.score(Trace(task="q", final_answer="99", status="solved"), vctx(votes=votes)).value == 0.0
    assert v.score(Trace(task="q", final_answer="12", status="solved"), vctx()).value == 0.5  # no votes
    assert v.score(Trace(task="q", final_answer=None, status="parse_error"), vctx(votes=votes)).value == 0.0


@dataclass
class Fixed:
    """A scripted verifier: a fixed score, counting its calls."""

    name: str
    value: float
    tokens: int = 0
    per_step: list[float] | None = None
    calls: int = 0

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        self.calls += 1
        return Score(value=self.value, prompt_tokens=self.tokens, completion_tokens=1, model_calls=1,
                     per_step=self.per_step, detail=f"{self.name} says {self.value}")


def test_combined_normalizes_weights_and_sums_costs():
    prm = Fixed("prm", 0.2, tokens=10, per_step=[0.9, 0.2])
    combined = Combined([(Fixed("self", 1.0, tokens=5), 3.0), (prm, 1.0)])
    score = combined.score(Trace(task="q"), vctx())
    assert score.value == pytest.approx(0.75 * 1.0 + 0.25 * 0.2)
    assert score.parts == {"self": 1.0, "prm": 0.2} and score.per_step == [0.9, 0.2]
    assert (score.prompt_tokens, score.completion_tokens, score.model_calls) == (15, 2, 2)
    assert combined.name == "self:0.75+prm:0.25" and "self says 1.0" in score.detail


def test_combined_skips_zero_weights_and_refuses_bad_ones():
    idle = Fixed("agreement", 0.0)
    score = Combined([(Fixed("env", 0.6), 2.0), (idle, 0.0)]).score(Trace(task="q"), vctx())
    assert score.value == pytest.approx(0.6) and idle.calls == 0
    with pytest.raises(ConfigError):
        Combined([(Fixed("env", 1.0), 0.0)])
    with pytest.raises(ConfigError):
        Combined([])


def test_registry_defaults_and_single_names():
    assert isinstance(build_verifier(None, agent="react", env=True), EnvVerifier)
    assert isinstance(build_verifier(None, agent="pal", env=False), ExecutionVerifier)
    assert isinstance(build_verifier("agreement", agent="react", env=False), AgreementVerifier)
    combined = build_verifier("env:2,agreement", agent="react", env=True)
    assert isinstance(combined, Combined) and [w for _, w in combined.parts] == pytest.approx([2 / 3, 1 / 3])
    with pytest.raises(ConfigError, match="unknown verifier"):
        build_verifier("oracle", agent="react", env=False)


def test_registry_imports_the_llm_verifiers_by_name(monkeypatch):
    made = []
    llm = types.ModuleType("ponder.graphs.verifiers.llm")
    llm.SelfVerifier = lambda: made.append("self") or Fixed("self", 0.5)  # type: ignore[attr-defined]
    prm = types.ModuleType("ponder.graphs.verifiers.prm")
    prm.PRMVerifier = lambda spec=None: made.append(spec) or Fixed("prm", 0.5)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ponder.graphs.verifiers.llm", llm)
    monkeypatch.setitem(sys.modules, "ponder.graphs.verifiers.prm", prm)
    assert build_verifier(None, agent="react", env=False).name == "self"
    assert isinstance(build_verifier("self:0.5,prm", agent="react", env=False, prm="openai:prm"), Combined)
    assert made == ["self", "self", "openai:prm"]


def test_verify_context_from_a_strategy_context(tmp_path):
    settings = load_settings(out_dir=tmp_path)
    model = ScriptedModel([])
    opened = []
    ctx = StrategyContext(settings=settings, model=model, answer_kind="number", executor=lambda: opened.append(1),
                          metadata={"entry_point": "f"})
    v = verify_context(ctx, votes={"3": 1.0})
    assert v.model is model and v.answer_kind == "number" and v.votes == {"3": 1.0} and v.entry_point == "f"
    v.executor()
    assert opened == [1]  # the context's factory
    assert verify_context(StrategyContext(settings=settings, model=model)).executor is not None


def test_env_intermediate_progress_guides_when_the_reward_is_only_the_win():
    v = EnvVerifier()
    none = v.score(env_trace(reward=0, max_reward=1), vctx())
    one = v.score(env_trace(reward=0, max_reward=1, progress=1), vctx())  # 0.9 x 1/(1+1)
    two = v.score(env_trace(reward=0, max_reward=1, progress=2), vctx())
    assert none.value == 0.0 and one.value == pytest.approx(0.45) and two.value == pytest.approx(0.6)
    assert "intermediate progress 1" in one.detail
    assert v.score(env_trace(reward=0, max_reward=1, progress=-1), vctx()).value == 0.0  # moved away: no progress
    assert v.score(env_trace(reward=1, max_reward=1, progress=1), vctx()).value == pytest.approx(0.9)  # the larger
    lost = v.score(env_trace(status="error", won=False, done=True, progress=2), vctx())
    assert lost.value == 0.0  # the outcome decides once the episode is over
    traj = Trajectory(task="t", agent="env", model="m", status="max_steps", metadata={"reward": 0, "progress": 2})
    assert v.score(Trace.from_trajectory(traj, max_reward=1), vctx()).value == pytest.approx(0.6)
