"""Single is run_agent: the same trajectory, the same record, and what its factories made is closed."""

from __future__ import annotations

from ponder.agents.runner import run_agent
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.single import Single
from ponder.models.scripted import ScriptedModel
from ponder.tools.base import FunctionTool

SCRIPT = ['Thought: add them\nAction: calculator\nAction Input: 2 + 3', "Thought: done\nFinal Answer: 5"]


def fields(traj: Trajectory) -> tuple:
    steps = [(s.kind, s.action, s.action_input, s.observation, s.prompt_tokens, s.completion_tokens)
             for s in traj.steps]
    usage = traj.usage.model_dump(exclude={"wall_seconds"})
    return traj.final_answer, traj.status, traj.agent, traj.model, steps, usage


def test_single_equals_run_agent(settings, tmp_path):
    plain = run_agent("What is 2 + 3?", settings=settings, model=ScriptedModel(list(SCRIPT)), metadata={"k": 1})
    ctx = StrategyContext(settings=settings, model=ScriptedModel(list(SCRIPT)), metadata={"k": 1})
    outcome = Single().run("What is 2 + 3?", ctx)
    (traj,) = outcome.trajectories
    assert fields(traj) == fields(plain) and traj.metadata["k"] == 1
    assert (outcome.kind, outcome.answer, outcome.status, outcome.chosen) == ("single", "5", "solved", 0)
    assert outcome.trajectory is traj and outcome.usage == traj.usage
    saved = list(read_jsonl(tmp_path / "runs" / "trajectories.jsonl", Trajectory))
    assert [t.id for t in saved] == [plain.id, traj.id]


def test_single_closes_what_the_context_made_and_keeps_what_it_was_given(settings):
    closed: list[str] = []

    class Counting(FunctionTool):
        def close(self) -> None:
            closed.append(self.name)

    def calculator(expression: str) -> str:
        """Evaluate an arithmetic expression."""
        return "5"

    made = Counting(calculator)
    ctx = StrategyContext(settings=settings, model=ScriptedModel(list(SCRIPT)), write=False, tools=lambda: [made])
    outcome = Single().run("What is 2 + 3?", ctx)
    assert outcome.answer == "5" and outcome.trajectory.steps[0].observation == "5"
    assert closed == ["calculator"]
    closed.clear()
    given = Single(tools=[made])
    assert given.run("What is 2 + 3?", ctx.derive(model=ScriptedModel(list(SCRIPT)))).answer == "5"
    assert closed == []  # the caller's tools stay open


def test_single_honours_the_context_step_cap(settings):
    looping = ['Thought: again\nAction: calculator\nAction Input: 1 + 1']
    capped = Single().run("q", StrategyContext(settings=settings, model=ScriptedModel(looping, repeat_last=True),
                                               max_steps=2, write=False))
    assert capped.status == "max_steps" and len(capped.trajectories[0].steps) == 2
    default = Single().run("q", StrategyContext(settings=settings, model=ScriptedModel(looping, repeat_last=True),
                                                write=False))
    assert default.status == "max_steps" and len(default.trajectories[0].steps) == settings.max_steps > 2
