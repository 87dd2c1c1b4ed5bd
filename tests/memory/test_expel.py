"""ExpeL: successful trajectories as few-shot turns, insight operations, insights in the system prompt,
held writes. Real Chroma store on disk (``store`` fixture) with the hashing embedder test double."""

from __future__ import annotations

import pytest

from ponder.agents.runner import run_agent
from ponder.core.records import Step
from ponder.core.settings import load_settings
from ponder.graphs.strategies.trials import run_trials
from ponder.memory.context import MemoryContext
from ponder.memory.experience import compact_trajectory, experience_messages
from ponder.memory.insights import InsightOp, apply_insight_ops, parse_insight_ops, ranked_insights
from ponder.memory.schema import Experience, Insight
from ponder.models.scripted import ScriptedModel

TASK = "Tom has 3 boxes of 12 eggs and 5 eggs break. How many eggs are left?"
SIMILAR = "Ann has 4 boxes of 12 eggs and 7 eggs break. How many eggs are left?"
ACTION = 'Thought: 3 boxes of 12, minus 5.\nAction: add\nAction Input: {"a": 36, "b": -5}'


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def settings(tmp_path, **overrides):
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", **overrides)


def solve_eggs() -> ScriptedModel:
    return ScriptedModel([ACTION, "Thought: I now know the final answer\nFinal Answer: 31"])


def flat(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def test_successful_run_becomes_an_experience_retrieved_as_turns(store, tmp_path):
    ctx = MemoryContext(store=store, mode="expel", label="31", task_family="eggs")
    first = run_agent(TASK, model=solve_eggs(), settings=settings(tmp_path), tools=[add], memory=ctx)
    (written,) = first.metadata["memory"]["written"]
    assert written["kind"] == "experience" and written["status"] == "added"
    (exp,) = store.list("experience")
    assert exp.text == (f"Question: {TASK}\n{ACTION}\nObservation: 31\n"
                        "Thought: I now know the final answer\nFinal Answer: 31")
    assert exp.run_id == first.id and exp.task == TASK and exp.task_family == "eggs" and exp.outcome == "success"
    assert exp.metadata["agent"] == "react"

    model = ScriptedModel(["Final Answer: 41"])
    second = run_agent(SIMILAR, model=model, settings=settings(tmp_path), tools=[add],
                       memory=MemoryContext(store=store, mode="expel"))
    turns = experience_messages(exp.text, "react")
    assert turns == [
        {"role": "user", "content": f"Question: {TASK}"},
        {"role": "assistant", "content": ACTION},
        {"role": "user", "content": "Observation: 31"},
        {"role": "assistant", "content": "Thought: I now know the final answer\nFinal Answer: 31"},
    ]
    (call,) = model.calls
    assert call[-len(turns) - 1:] == [*turns, {"role": "user", "content": f"Question: {SIMILAR}"}]
    assert call[0]["role"] == "system"
    assert [(r["id"], r["kind"]) for r in second.metadata["memory"]["retrieved"]] == [(exp.id, "experience")]


def test_failures_and_malformed_steps_do_not_become_experiences(store, tmp_path):
    ctx = MemoryContext(store=store, mode="expel", label="31")
    run_agent(TASK, model=ScriptedModel(["Final Answer: 30"]), settings=settings(tmp_path), tools=[add], memory=ctx)
    assert store.list() == []  # wrong answer: nothing stored (ExpeL keeps the failure in the trials loop)
    model = ScriptedModel(["junk", ACTION, "Final Answer: 31"])
    run_agent(TASK, model=model, settings=settings(tmp_path), tools=[add], memory=ctx)
    (exp,) = store.list("experience")
    assert "junk" not in exp.text and "Invalid" not in exp.text


def test_experiences_are_shared_within_one_agent_only(store, tmp_path):
    store.add(Experience(text=f"Question: {TASK}\n```python\ndef solution():\n    return 31\n```\nFinal Answer: 31",
                         metadata={"agent": "pal"}))
    model = ScriptedModel(["Final Answer: 41"])
    traj = run_agent(SIMILAR, model=model, settings=settings(tmp_path), tools=[add],
                     memory=MemoryContext(store=store, mode="expel"))
    assert traj.metadata["memory"]["retrieved"] == [] and "def solution" not in flat(model.calls[0])


def test_pal_experience_is_the_solving_program(store, tmp_path):
    program = "```python\ndef solution():\n    return 3 * 12 - 5\n```"
    ctx = MemoryContext(store=store, mode="expel")
    run_agent(TASK, agent="pal", model=ScriptedModel(["no code", program]), memory=ctx,
              settings=settings(tmp_path, exec_timeout=5.0))
    (exp,) = store.list("experience")
    assert experience_messages(exp.text, "pal") == [{"role": "user", "content": f"Question: {TASK}"},
                                                    {"role": "assistant", "content": program}]
    model = ScriptedModel([program])
    run_agent(SIMILAR, agent="pal", model=model, memory=ctx, settings=settings(tmp_path, exec_timeout=5.0))
    assert model.calls[0][1:3] == experience_messages(exp.text, "pal")


INSIGHTS = ["Check units.", "Use the calculator.", "Read the question twice."]


@pytest.mark.parametrize(
    ("reply", "ops", "invalid"),
    [
        ("ADD: Verify the final number.", [InsightOp("ADD", None, "Verify the final number.")], 0),
        ("EDIT 2: Use the calculator for every sum.", [InsightOp("EDIT", 2, "Use the calculator for every sum.")], 0),
        ("UPVOTE 1\nDOWNVOTE 3", [InsightOp("UPVOTE", 1), InsightOp("DOWNVOTE", 3)], 0),
        ("- **UPVOTE 1**: still true\n2. downvote #3", [InsightOp("UPVOTE", 1), InsightOp("DOWNVOTE", 3)], 0),
        ("AGREE 2\nREMOVE 1", [InsightOp("UPVOTE", 2), InsightOp("DOWNVOTE", 1)], 0),
        ("ADD 4: New rule in ExpeL style", [InsightOp("ADD", None, "New rule in ExpeL style")], 0),
        ("Here are my operations:\n\nADD: ok\nI think that's all.", [InsightOp("ADD", None, "ok")], 2),
        ("UPVOTE 4\nDOWNVOTE 0\nEDIT 9: x", [], 3),  # out of range
        ("ADD:\nEDIT 1:\nUPVOTE\nUPVOTE one\nADDING: x", [], 5),  # empty texts, missing numbers
        ("", [], 0),
    ],
)
def test_parse_insight_ops(reply, ops, invalid):
    parsed = parse_insight_ops(reply, len(INSIGHTS))
    assert parsed.ops == ops and len(parsed.invalid) == invalid


def seed_insights(store, scores=(3, 2, 1)) -> list[Insight]:
    records = [Insight(text=t, score=s, created=f"2024-01-0{i}T00:00:00+00:00")
               for i, (t, s) in enumerate(zip(INSIGHTS, scores, strict=True), 1)]
    for r in records:
        assert store.add(r).status == "added"
    return records


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([InsightOp("ADD", None, "Verify the final number.")],
         {"Check units.": 3, "Use the calculator.": 2, "Read the question twice.": 1, "Verify the final number.": 2}),
        ([InsightOp("EDIT", 2, "Use the calculator for sums.")],
         {"Check units.": 3, "Use the calculator for sums.": 3, "Read the question twice.": 1}),
        ([InsightOp("UPVOTE", 3), InsightOp("UPVOTE", 3)],
         {"Check units.": 3, "Use the calculator.": 2, "Read the question twice.": 3}),
        ([InsightOp("DOWNVOTE", 1)], {"Check units.": 2, "Use the calculator.": 2, "Read the question twice.": 1}),
        ([InsightOp("DOWNVOTE", 3)], {"Check units.": 3, "Use the calculator.": 2}),  # 1 → 0: deleted
        ([InsightOp("DOWNVOTE", 2), InsightOp("DOWNVOTE", 2), InsightOp("UPVOTE", 2), InsightOp("EDIT", 2, "x")],
         {"Check units.": 3, "Read the question twice.": 1}),  # deleted, later ops on it skipped
    ],
)
def test_apply_insight_ops(store, ops, expected):
    ctx = MemoryContext(store=store, mode="expel")
    insights = seed_insights(store)
    report = apply_insight_ops(ctx, insights, ops)
    assert {i.text: i.score for i in ranked_insights(ctx)} == expected
    assert len(report.deleted) == len(INSIGHTS) + sum(op.op == "ADD" for op in ops) - len(expected)


def test_apply_report_counts(store):
    ctx = MemoryContext(store=store, mode="expel")
    report = apply_insight_ops(ctx, seed_insights(store, (1, 2, 3)), parse_insight_ops(
        "ADD: new one\nEDIT 2: calc\nUPVOTE 3\nDOWNVOTE 1\nUPVOTE 1", 3).ops)
    assert (report.added, report.edited, report.upvoted, report.downvoted, report.skipped) == (1, 1, 1, 1, 1)
    assert [i.text for i in ranked_insights(ctx)] == ["Read the question twice.", "calc", "new one"]


def test_insights_in_the_system_prompt_ranked_by_score(store, tmp_path):
    seed_insights(store, (1, 5, 3))
    ctx = MemoryContext(store=store, mode="expel", max_insights=2)
    model = ScriptedModel(["Final Answer: 31"])
    traj = run_agent(TASK, model=model, settings=settings(tmp_path), tools=[add], memory=ctx)
    system = model.calls[0][0]["content"]
    section = system[system.index("Insights from past tasks"):]
    assert section.splitlines()[1:] == ["- Use the calculator.", "- Read the question twice."]
    assert system.startswith("Answer the question step by step.")
    kinds = [(r["kind"], r["score"]) for r in traj.metadata["memory"]["retrieved"]]
    assert kinds == [("insight", 5), ("insight", 3)]
    reflexion_only = ScriptedModel(["Final Answer: 31"])
    run_agent(TASK, model=reflexion_only, settings=settings(tmp_path), tools=[add],
              memory=MemoryContext(store=store, mode="reflexion"))
    assert "Insights" not in reflexion_only.calls[0][0]["content"]


def test_held_writes_reach_the_store_only_on_flush(store, tmp_path):
    ctx = MemoryContext(store=store, mode="both", label="31", hold_writes=True)
    seeded = seed_insights(store)
    good = run_agent(TASK, model=solve_eggs(), settings=settings(tmp_path), tools=[add], memory=ctx)
    bad = run_agent(TASK, model=ScriptedModel(["Final Answer: 30", "Check the sum."]), settings=settings(tmp_path),
                    tools=[add], memory=ctx)
    apply_insight_ops(ctx, seeded, [InsightOp("ADD", None, "New."), InsightOp("DOWNVOTE", 3)])
    assert good.metadata["memory"]["written"][0]["reason"] == "held"
    assert bad.metadata["memory"]["written"][0]["kind"] == "reflection"
    assert store.list("experience") == store.list("reflection") == [] and len(store.list("insight")) == 3
    assert len(ctx.pending) == 4
    results = ctx.flush()
    assert [r.status for r in results] == ["added", "added", "added", "updated"] and ctx.pending == []
    assert len(store.list("experience")) == len(store.list("reflection")) == 1
    assert sorted(i.text for i in store.list("insight")) == ["Check units.", "New.", "Use the calculator."]
    ctx.add(Insight(text="dropped"))
    assert ctx.discard() == 1 and ctx.flush() == []


def test_trials_compare_failure_with_success_and_update_insights(store, tmp_path):
    seed_insights(store)

    def fn(messages, params):
        text = messages[-1]["content"]
        if "Failed attempt:" in text:
            return "ADD: Subtract the broken eggs.\nUPVOTE 2\nUPVOTE 9\nThat is all."
        if "Reply with the lesson only." in text:
            return "Subtract the broken eggs from the total."
        return "Final Answer: 31" if "Subtract the broken eggs" in flat(messages) else "Final Answer: 36"

    model = ScriptedModel(fn)
    runs = run_trials(TASK, trials=3, memory="both", label="31", settings=settings(tmp_path), model=model,
                      store=store, tools=[add])
    assert [t.final_answer for t in runs] == ["36", "31"]
    compare = next(c for c in model.calls if "Failed attempt:" in c[-1]["content"])[-1]["content"]
    assert "1. Check units." in compare and "Final Answer: 36" in compare and "Final Answer: 31" in compare
    (update,) = runs[-1].metadata["insights"]
    assert update["added"] == 1 and update["upvoted"] == 1 and update["invalid_lines"] == 2
    scores = {i.text: i.score for i in store.list("insight")}
    assert scores["Subtract the broken eggs."] == 2 and scores["Use the calculator."] == 3
    assert len(store.list("experience")) == 1 and len(store.list("reflection")) == 1


def test_trials_learn_from_a_batch_of_successes(store, tmp_path):
    store.add(Experience(text=f"Question: {SIMILAR}\nAction: add\nAction Input: 41\nObservation: 41\n"
                              "Final Answer: 41", task=SIMILAR, metadata={"agent": "react"}))

    def fn(messages, params):
        if "Successful attempts:" in messages[-1]["content"]:
            return "ADD: Multiply boxes by their size, then subtract."
        return "Final Answer: 31"

    model = ScriptedModel(fn)
    runs = run_trials(TASK, trials=2, memory="expel", label="31", settings=settings(tmp_path), model=model,
                      store=store, tools=[add])
    assert len(runs) == 1
    batch = model.calls[-1][-1]["content"]
    assert f"Question: {TASK}" in batch and f"Question: {SIMILAR}" in batch and "(none yet)" in batch
    assert [i.text for i in store.list("insight")] == ["Multiply boxes by their size, then subtract."]


def test_compact_trajectory_keeps_errors_for_diagnosis():
    steps = [Step(index=0, kind="parse_error", raw="hmm\nwell", observation="Invalid format: no Action"),
             Step(index=1, kind="action", thought="add", action="add", action_input="1+1", observation="2\n"),
             Step(index=2, kind="final", thought="done")]
    assert compact_trajectory("q?", steps, "2").splitlines() == [
        "Question: q?", "Invalid reply: hmm well", "Observation: Invalid format: no Action", "Thought: add",
        "Action: add", "Action Input: 1+1", "Observation: 2", "Thought: done", "Final Answer: 2"]
    assert "Invalid" not in compact_trajectory("q?", steps, "2", include_errors=False)
