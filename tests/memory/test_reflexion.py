"""Reflexion: lessons written after failed trials, retrieved by similarity for the next ones.

The store is the real Chroma store on disk (``store`` fixture of ``conftest.py``) embedding with the
hashing test double; the model is scripted and answers depending on whether its prompt holds the lesson.
"""

from __future__ import annotations

import json

import pytest

from ponder.agents.runner import run_agent
from ponder.cli import main
from ponder.core.settings import load_settings
from ponder.graphs.strategies.trials import run_trials
from ponder.memory.context import MemoryContext
from ponder.memory.reflection import failure_reason, lessons_section
from ponder.memory.schema import Hit, Reflection
from ponder.models.scripted import ScriptedModel

TASK = "A pen costs 2.50 dollars. How many cents does the pen cost?"
LESSON = "Convert dollars to cents by multiplying by 100 before answering."


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def is_reflect_prompt(messages) -> bool:
    return "Reply with the lesson only." in messages[-1]["content"]


def flat(messages) -> str:
    return "\n".join(m["content"] for m in messages)


def learner(messages, params) -> str:
    """Wrong (2.5) until the lesson is in the prompt, then right (250)."""
    if is_reflect_prompt(messages):
        return f"Reflection: {LESSON}"
    if LESSON in flat(messages):
        return "Thought: 2.50 dollars is 250 cents.\nFinal Answer: 250"
    return "Thought: The pen costs 2.50.\nFinal Answer: 2.5"


def agent_calls(model: ScriptedModel) -> list[list[dict]]:
    return [c for c in model.calls if not is_reflect_prompt(c)]


def settings(tmp_path, **overrides):
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", **overrides)


def test_failed_trial_leaves_a_lesson_the_next_trial_uses(store, tmp_path):
    model = ScriptedModel(learner)
    runs = run_trials(TASK, trials=3, memory="reflexion", label="250", settings=settings(tmp_path), model=model,
                      store=store, tools=[add], task_family="toy", namespace="exp1")
    assert [t.final_answer for t in runs] == ["2.5", "250"]  # stopped early at the first correct answer
    assert [t.metadata["trial"] for t in runs] == [1, 2]
    # trial 1: wrong vs the label → reflection written with its provenance
    first = runs[0].metadata["memory"]
    assert first["outcome"] == "failure" and first["correct"] is False and "was wrong" in first["failure"]
    (written,) = first["written"]
    assert written["kind"] == "reflection" and written["status"] == "added"
    (stored,) = store.list("reflection", namespace="exp1")
    assert stored.id == written["id"] and LESSON in stored.text and stored.text.startswith(f"Task: {TASK}")
    assert stored.task == TASK and stored.task_family == "toy" and stored.run_id == runs[0].id
    assert stored.outcome == "failure" and stored.namespace == "exp1"
    # the reflection prompt saw the trajectory and the failure reason, not the label
    reflect_call = next(c for c in model.calls if is_reflect_prompt(c))
    assert "Final Answer: 2.5" in reflect_call[-1]["content"] and "was wrong" in reflect_call[-1]["content"]
    assert "250" not in reflect_call[-1]["content"]
    # trial 2: the lesson is in the prompt, in front of the question, and was recorded as retrieved
    first_call, second_call = agent_calls(model)
    assert LESSON not in flat(first_call)
    question = second_call[-1]["content"]
    assert question.startswith("Lessons from earlier attempts") and question.endswith(f"Question: {TASK}")
    assert LESSON in question
    retrieved = runs[1].metadata["memory"]["retrieved"]
    assert [(r["id"], r["kind"]) for r in retrieved] == [(stored.id, "reflection")]
    assert runs[1].metadata["memory"]["outcome"] == "success" and runs[1].metadata["memory"]["written"] == []
    # both trials are on disk with their trial number and memory log
    lines = (tmp_path / "runs" / "trajectories.jsonl").read_text().splitlines()
    assert [json.loads(line)["metadata"]["trial"] for line in lines] == [1, 2]
    assert json.loads(lines[1])["metadata"]["memory"]["retrieved"][0]["id"] == stored.id


def test_max_steps_is_a_failure(store, tmp_path):
    def fn(messages, params):
        if is_reflect_prompt(messages):
            return LESSON
        if LESSON in flat(messages):
            return "Final Answer: 250"
        return 'Thought: add\nAction: add\nAction Input: {"a": 1, "b": 1}'

    model = ScriptedModel(fn)
    runs = run_trials(TASK, trials=2, memory="reflexion", settings=settings(tmp_path, max_steps=2), model=model,
                      store=store, tools=[add])
    assert [t.status for t in runs] == ["max_steps", "solved"]
    assert "step limit" in runs[0].metadata["memory"]["failure"]
    (stored,) = store.list("reflection")
    assert stored.metadata["failure"] == runs[0].metadata["memory"]["failure"]
    assert "Action: add" in next(c for c in model.calls if is_reflect_prompt(c))[-1]["content"]


def test_solved_without_label_is_a_success_and_writes_nothing(store, tmp_path):
    model = ScriptedModel(learner)
    runs = run_trials(TASK, trials=3, memory="reflexion", settings=settings(tmp_path), model=model, store=store,
                      tools=[add])
    assert len(runs) == 1 and runs[0].final_answer == "2.5"  # no label: "solved" is success
    assert len(model.calls) == 1 and store.list() == []


def test_retrieval_is_by_similarity(store, tmp_path):
    ctx = MemoryContext(store=store, mode="reflexion", k=1)
    unrelated = Reflection(text="Task: What is the capital city of France?\nLesson: Search the country page first.")
    related = Reflection(text=f"Task: A pencil costs 0.75 dollars. How many cents does the pencil cost?\n"
                              f"Lesson: {LESSON}")
    assert store.add(unrelated).status == store.add(related).status == "added"
    model = ScriptedModel(learner)
    traj = run_agent(TASK, model=model, settings=settings(tmp_path), tools=[add], memory=ctx)
    assert traj.final_answer == "250"
    prompt = flat(model.calls[0])
    assert LESSON in prompt and "capital city of France" not in prompt
    assert [r["id"] for r in traj.metadata["memory"]["retrieved"]] == [related.id]


def test_held_lessons_of_the_same_task_are_retrieved_first(store):
    """A run holding its writes (a self-consistency sample running trials) reads its own lessons."""
    stored = Reflection(text=f"Task: {TASK}\nLesson: Read the question twice.", task=TASK)
    assert store.add(stored).status == "added"
    ctx = MemoryContext(store=store, mode="reflexion", k=2).held()
    own = ctx.stamp(Reflection(text=f"Task: {TASK}\nLesson: {LESSON}"), TASK)
    other = ctx.stamp(Reflection(text="Task: What is the capital of France?\nLesson: Search first."), "France?")
    assert ctx.add(own).reason == ctx.add(other).reason == "held" and len(ctx.pending) == 2
    hits = ctx.search("reflection", TASK, k=2)
    assert [h.record.id for h in hits] == [own.id, stored.id] and hits[0].similarity == 1.0
    assert [h.record.id for h in ctx.search("reflection", TASK, k=1)] == [own.id]
    assert [h.record.id for h in ctx.search("experience", TASK, k=2)] == []
    assert [r.id for r in store.list("reflection")] == [stored.id]  # the held ones are still held


def test_namespaces_keep_lessons_apart(store, tmp_path):
    store.add(Reflection(text=f"Task: {TASK}\nLesson: {LESSON}", namespace="other"))
    model = ScriptedModel(learner)
    ctx = MemoryContext(store=store, mode="reflexion", namespace="mine")
    traj = run_agent(TASK, model=model, settings=settings(tmp_path), tools=[add], memory=ctx)
    assert traj.final_answer == "2.5" and traj.metadata["memory"]["retrieved"] == []


def test_memory_off_makes_no_memory_calls_and_adds_no_text(store, tmp_path):
    store.add(Reflection(text=f"Task: {TASK}\nLesson: {LESSON}"))
    baseline = ScriptedModel(learner)
    plain = run_agent(TASK, model=baseline, settings=settings(tmp_path), tools=[add])
    model = ScriptedModel(learner)
    runs = run_trials(TASK, trials=2, memory="none", label="250", settings=settings(tmp_path), model=model,
                      store=store, tools=[add])
    assert [t.final_answer for t in runs] == ["2.5", "2.5"]  # plain retries: nothing learnt
    assert len(model.calls) == 2 and not any(is_reflect_prompt(c) for c in model.calls)
    assert model.calls[0] == model.calls[1] == baseline.calls[0]
    assert "Lessons" not in flat(model.calls[0]) and "Insights" not in flat(model.calls[0])
    assert "memory" not in plain.metadata and all("memory" not in t.metadata for t in runs)
    assert len(store.list()) == 1  # nothing written


def test_pal_reflects_and_retries(store, tmp_path):
    def fn(messages, params):
        if is_reflect_prompt(messages):
            return LESSON
        body = "return 2.5 * 100" if LESSON in flat(messages) else "return 2.5"
        return f"```python\ndef solution():\n    {body}\n```"

    model = ScriptedModel(fn)
    runs = run_trials(TASK, trials=2, memory="reflexion", label="250", agent="pal", model=model, store=store,
                      settings=settings(tmp_path, exec_timeout=5.0))
    assert [t.final_answer for t in runs] == ["2.5", "250"]
    second = agent_calls(model)[1]
    assert second[0]["role"] == "system" and LESSON in second[1]["content"]


@pytest.mark.parametrize(
    ("status", "answer", "label", "failed"),
    [
        ("solved", "5", None, False),
        ("solved", "5", "5.0", False),
        ("solved", "The answer is 6", "5", True),
        ("max_steps", None, None, True),
        ("max_steps", None, "5", True),
        ("parse_error", None, None, True),
        ("error", None, None, True),
    ],
)
def test_failure_reason(status, answer, label, failed):
    assert (failure_reason(status, answer, label) is not None) is failed


def test_lessons_section_format():
    assert lessons_section([]) is None
    hit = Hit(record=Reflection(text="Task: q\nLesson: be careful"), similarity=0.9)
    assert lessons_section([hit]).splitlines()[1:] == ["- Task: q", "  Lesson: be careful"]


def test_cli_run_with_memory_and_trials(tmp_path, monkeypatch, capsys):
    import ponder.memory.store as store_module
    from ponder.memory.embeddings import HashingEmbeddingFunction

    real_open = store_module.open_store
    monkeypatch.setattr(store_module, "open_store",
                        lambda s: real_open(s, embedding_function=HashingEmbeddingFunction()))
    monkeypatch.setenv("PONDER_MEMORY_PATH", str(tmp_path / "cli-memory"))
    script = tmp_path / "script.jsonl"
    replies = ["Final Answer: 2.5", LESSON, "Final Answer: 250"]
    script.write_text("".join(json.dumps(r) + "\n" for r in replies))
    argv = ["run", TASK, "--model", f"scripted:{script}", "--out", str(tmp_path / "out"), "--json",
            "--memory", "reflexion", "--namespace", "cli", "--trials", "3", "--label", "250"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer"] == "250" and out["correct"] is True and out["status"] == "solved"
    assert [(t["trial"], t["answer"], t["correct"]) for t in out["trials"]] == [(1, "2.5", False), (2, "250", True)]
    assert out["memory"]["namespace"] == "cli" and out["memory"]["retrieved"][0]["kind"] == "reflection"
    with store_module.open_store(load_settings()) as store:  # the CLI closed its own
        assert [r.namespace for r in store.list("reflection")] == ["cli"]


def test_cli_rejects_unknown_memory_mode(capsys):
    assert main(["run", "q", "--memory", "forever"]) == 2
    assert "memory" in capsys.readouterr().err
