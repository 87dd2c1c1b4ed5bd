"""``ponder export sft`` on real records made with the scripted model: evals, plain runs, votes and searches;
each filter, the held-out guard, dedup and the prompt fingerprint check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.agents.runner import run_agent
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.context import EvalOptions
from ponder.envs.registry import get_suite
from ponder.envs.runner import run_eval
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.run import run_self_consistency
from ponder.models.scripted import ScriptedModel
from ponder.training.examples import iter_examples
from ponder.training.export import HeldOutError, NothingExportedError, export_sft
from ponder.training.export_filters import AnswerKey, ExportFilters
from ponder.training.held_out import build_held_out, question_key
from ponder.training.prompt import agent_prefix, prefix_sha256

ROWS = [{"id": f"t-{i}", "question": f"What is 2 + {i}?", "answer": str(2 + i)} for i in range(3)]


def add_model(wrong: int | None = None) -> ScriptedModel:
    """ReAct: one calculator call, then the answer (wrong for question ``wrong``)."""
    def respond(messages, params):
        question = [m for m in messages if m["content"].startswith("Question: ")][-1]["content"]
        n = int(question.split("+ ")[1].rstrip("?"))
        if not messages[-1]["content"].startswith("Observation"):
            return f"Thought: add\nAction: calculator\nAction Input: 2+{n}"
        return f"Final Answer: {99 if n == wrong else 2 + n}"
    return ScriptedModel(respond)


@pytest.fixture
def settings(tmp_path, data_dir):
    return load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


@pytest.fixture
def eval_dir(tmp_path, settings) -> Path:
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "eval"
    run = run_eval(get_suite("gsm8k"), EvalOptions(suite="gsm8k", data=data, out_dir=out), settings,
                   model=add_model(wrong=2), quiet=True)
    assert [r.success for r in run.results] == [True, True, False]
    return out


def export(tmp_path, settings, runs, fmt="chat", **filters):
    return export_sft(runs, tmp_path / "out.jsonl", ExportFilters(**filters), fmt, settings)


def test_eval_solved_only_writes_the_real_prompt_and_stats(tmp_path, settings, eval_dir):
    report = export(tmp_path, settings, [eval_dir], solved_only=True)
    assert (report.read, report.kept, report.dropped) == (3, 2, {"not_solved": 1})
    stats = json.loads((tmp_path / "out.jsonl.stats.json").read_text())
    assert stats["kept"] == 2 and stats["dropped"] == {"not_solved": 1} and stats["kept_by_source"] == {"eval": 2}
    examples = list(iter_examples(tmp_path / "out.jsonl"))
    trajs = {t["id"]: t for t in map(json.loads, (eval_dir / "trajectories.jsonl").read_text().splitlines())}
    prefix = agent_prefix("react", ("calculator", "python"), settings)
    for ex in examples:
        traj = trajs[ex.metadata["trajectory_id"]]
        assert [t.model_dump() for t in ex.messages[:len(prefix)]] == prefix
        assert ex.messages[len(prefix)].content == f"Question: {traj['task']}"
        assert [t.content for t in ex.messages if t.role == "assistant"][-2:] == [s["raw"] for s in traj["steps"]]
        assert ex.messages[-1].role == "assistant" and ex.metadata["correct"] is True
        assert ex.metadata["prompt"] == "same" and ex.metadata["task_id"] in ("t-0", "t-1")
    # TRL / datasets read it as a conversational dataset: a `messages` column of role/content turns
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "out.jsonl"), split="train")
    assert ds.num_rows == 2 and set(ds[0]["messages"][0]) == {"role", "content"}


def test_agents_record_their_tools_and_prompt_fingerprint(tmp_path, settings):
    traj = run_agent("What is 2 + 5?", agent="react", settings=settings, model=add_model(), write=False)
    prefix = agent_prefix("react", ("calculator", "python"), settings)
    assert traj.metadata["tools"] == ["calculator", "python"]
    assert traj.metadata["prompt_sha256"] == prefix_sha256(prefix)


def test_the_fingerprint_covers_recalled_lessons():
    from ponder.agents.kernel import prompt_facts

    prefix = [{"role": "system", "content": "s"}]
    plain = prompt_facts({"prefix": prefix, "lessons": None}, ["calculator"])
    assert plain == {"tools": ["calculator"], "prompt_sha256": prefix_sha256(prefix)}
    assert prompt_facts({"prefix": prefix, "lessons": "Lessons: ..."}, [])["prompt_sha256"] != plain["prompt_sha256"]


def test_prompt_drift_is_dropped_unless_allowed_and_old_runs_are_unverified(tmp_path, settings):
    run_dir = tmp_path / "runs"
    for n in range(3):
        run_agent(f"What is 2 + {n}?", agent="react", settings=settings, model=add_model(), out_dir=run_dir)
    path = run_dir / "trajectories.jsonl"
    trajs = [Trajectory.model_validate_json(line) for line in path.read_text().splitlines()]
    trajs[0].metadata["prompt_sha256"] = "0" * 16  # the prompt files changed since (or memory was recalled)
    del trajs[1].metadata["tools"], trajs[1].metadata["prompt_sha256"]  # a run from before the fingerprint
    path.write_text("".join(t.model_dump_json() + "\n" for t in trajs))
    report = export(tmp_path, settings, [path])
    assert report.kept == 2 and report.dropped == {"prompt_changed": 1}
    assert report.notes == {"prompt_unverified": 1}
    assert export(tmp_path, settings, [path], allow_prompt_drift=True).kept == 3


def test_plain_runs_judged_by_an_answer_key(tmp_path, settings):
    run_dir = tmp_path / "runs"
    for n in range(3):
        run_agent(f"What is 2 + {n}?", agent="react", settings=settings, model=add_model(wrong=1), out_dir=run_dir)
    assert export(tmp_path, settings, [run_dir], solved_only=True).kept == 3  # all ended solved
    key = AnswerKey(by_id={}, by_question={question_key(r["question"]): r["answer"] for r in ROWS[:2]})
    report = export(tmp_path, settings, [run_dir], solved_only=True, answers=key)
    assert report.kept == 1 and report.dropped == {"not_solved": 1, "no_gold": 1}
    [ex] = iter_examples(tmp_path / "out.jsonl")
    assert ex.metadata["task"] == "What is 2 + 0?" and ex.metadata["source"] == "run"


def test_self_consistency_voted_only_and_dedup(tmp_path, settings):
    answers = iter(["Final Answer: 7", "Final Answer: 7", "Final Answer: 8"])
    model = ScriptedModel(lambda messages, params: next(answers))
    run_self_consistency("What is 3 + 4?", config=SCConfig(samples=3, wave=1), agent="react", settings=settings,
                         model=model, out_dir=tmp_path / "sc")
    report = export(tmp_path, settings, [tmp_path / "sc" / "self_consistency.jsonl"], voted_only=True, dedup="none")
    assert (report.read, report.kept, report.dropped) == (3, 2, {"not_voted": 1})
    assert all(ex.metadata["voted"] and ex.metadata["answer"] == "7" for ex in iter_examples(tmp_path / "out.jsonl"))
    deduped = export(tmp_path, settings, [tmp_path / "sc"], voted_only=True)
    assert deduped.kept == 1 and deduped.dropped == {"not_voted": 1, "duplicate_task": 1}


class AnswerVerifier:
    """Scores a finished run 0.9 when it answered 42, else 0.2."""

    name = "answer"

    def score(self, trace, ctx):
        from ponder.graphs.verifiers.base import Score

        return Score(value=0.9 if trace.final_answer == "42" else 0.2)


def test_search_records_carry_verifier_scores(tmp_path, settings):
    from ponder.graphs.search.beam import BeamSearch
    from ponder.graphs.strategies.base import StrategyContext
    from ponder.graphs.strategies.spec import RunSpec

    model = ScriptedModel(lambda messages, params: f"Final Answer: {42 if params.seed % 2 else 41}")
    ctx = StrategyContext(settings=settings, model=model, agent="react", write=True, out_dir=tmp_path / "search")
    outcome = BeamSearch(RunSpec(strategy="beam", beam_width=2, expansions=2),
                         verifier=AnswerVerifier()).run("What is 6 * 7?", ctx, label="42")
    assert outcome.answer == "42"
    report = export(tmp_path, settings, [tmp_path / "search" / "search.jsonl"], min_score=0.5)
    assert report.kept == 1 and report.by_source == {"search": 1}
    [ex] = iter_examples(tmp_path / "out.jsonl")
    assert ex.metadata["score"] == 0.9 and ex.metadata["correct"] is True
    assert ex.metadata["prompt"] == "same"  # the search stepper records the prompt fingerprint too


def test_search_paths_below_the_score_are_dropped(tmp_path, settings):
    run_dir = tmp_path / "runs"
    for score in (0.2, 0.7):
        run_agent("What is 2 + 1?", agent="react", settings=settings, model=add_model(), out_dir=run_dir,
                  metadata={"score": score})
    report = export(tmp_path, settings, [run_dir], min_score=0.5, dedup="none")
    assert report.kept == 1 and report.dropped == {"below_min_score": 1}
    best = export(tmp_path, settings, [run_dir])  # dedup: the best-scoring of the task
    assert best.dropped == {"duplicate_task": 1}
    assert next(iter_examples(tmp_path / "out.jsonl")).metadata["score"] == 0.7


def test_held_out_guard_refuses_or_drops(tmp_path, settings, eval_dir):
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"id": "t-0", "question": "x"}) + "\n"
                    + json.dumps({"id": "other", "question": "  what IS 2 +  1?"}) + "\n")
    guard = build_held_out([held], settings, drop=False, shipped=False)
    with pytest.raises(HeldOutError, match=r"2 kept episode\(s\).*'t-0'.*--drop-held-out") as err:
        export(tmp_path, settings, [eval_dir], held_out=guard)
    assert "\n" not in str(err.value) and not (tmp_path / "out.jsonl").exists()
    dropping = build_held_out([held], settings, drop=True, shipped=False)
    report = export(tmp_path, settings, [eval_dir], held_out=dropping)
    assert report.kept == 1 and report.dropped == {"held_out": 2}


def test_shipped_eval_files_are_dropped_by_default(tmp_path, settings, data_dir):
    first = json.loads((data_dir / "gsm8k" / "test_dev.jsonl").open().readline())
    run_dir = tmp_path / "runs"
    run_agent(first["question"], agent="react", settings=settings, model=ScriptedModel(["Final Answer: 18"]),
              out_dir=run_dir)
    run_agent("What is 2 + 2?", agent="react", settings=settings, model=add_model(), out_dir=run_dir)
    guard = build_held_out([], settings, drop=False, shipped=True)
    assert len(guard.files) == 4
    report = export(tmp_path, settings, [run_dir], held_out=guard)
    assert report.kept == 1 and report.dropped == {"held_out": 1}
    assert any("shipped eval file" in f for f in report.held_out_files)


def test_parse_errors_hints_agents_and_torn_lines(tmp_path, settings):
    run_dir = tmp_path / "runs"
    run_agent("What is 2 + 1?", agent="react", settings=settings,
              model=ScriptedModel(["I think it is 3", "Final Answer: 3"]), out_dir=run_dir)
    run_agent("What is 2 + 2?", agent="react", settings=settings, model=add_model(), out_dir=run_dir,
              metadata={"hint": True})
    with (run_dir / "trajectories.jsonl").open("a") as fh:
        fh.write('{"id": "torn", "task": "What is')  # a torn last line
    report = export(tmp_path, settings, [run_dir])
    assert report.kept == 1 and report.dropped == {"parse_errors": 1} and report.torn_lines == 1
    kept = export(tmp_path, settings, [run_dir], keep_parse_errors=True, exclude_hints=True)
    assert kept.kept == 1 and kept.dropped == {"hint": 1}
    [ex] = iter_examples(tmp_path / "out.jsonl")
    assert any(t.role == "user" and t.content.startswith("Observation:") for t in ex.messages)
    with pytest.raises(NothingExportedError, match="agent_filter: 2"):
        export(tmp_path, settings, [run_dir], agent="pal", keep_parse_errors=True)


def test_star_rationalization_runs_lose_the_hint_and_are_marked(tmp_path, settings):
    from ponder.training.rationalize import hint_text

    run_dir = tmp_path / "runs"  # what `ponder star` leaves in round-r/rationalize: the hinted question as task
    script = ["Thought: add\nAction: calculator\nAction Input: 2+2", "Final Answer: 4"]
    run_agent(f"What is 2 + 2? {hint_text('4')}", agent="react", settings=settings, model=ScriptedModel(script),
              out_dir=run_dir)
    report = export(tmp_path, settings, [run_dir])
    assert report.kept == 1
    [ex] = iter_examples(tmp_path / "out.jsonl")
    assert [t.content for t in ex.messages if t.content.startswith("Question: ")][-1] == "Question: What is 2 + 2?"
    assert "answer is" not in json.dumps([t.content for t in ex.messages[-4:]])
    assert ex.metadata["hint"] is True and ex.metadata["task"] == "What is 2 + 2?"
    with pytest.raises(NothingExportedError, match="hint: 1"):
        export(tmp_path, settings, [run_dir], exclude_hints=True)


def test_pal_conversations_end_on_the_program(tmp_path, settings):
    from ponder.tools.sandbox.local import LocalSandbox

    program = "```python\ndef solution():\n    return 2 + 3\n```"
    run_agent("What is 2 + 3?", agent="pal", settings=settings, model=ScriptedModel([program]),
              executor=LocalSandbox(), out_dir=tmp_path / "runs")
    report = export(tmp_path, settings, [tmp_path / "runs"], solved_only=True)
    assert report.kept == 1
    [ex] = iter_examples(tmp_path / "out.jsonl")
    assert [t.role for t in ex.messages] == ["system", "user", "assistant"] and ex.messages[-1].content == program


def test_missing_paths_and_empty_folders_are_errors(tmp_path, settings):
    from ponder.core.errors import DataError

    with pytest.raises(DataError, match="no such file or folder"):
        export(tmp_path, settings, [tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no run records"):
        export(tmp_path, settings, [tmp_path / "empty"])
    junk = tmp_path / "junk" / "trajectories.jsonl"
    junk.parent.mkdir()
    junk.write_text("not json\n{}\n")
    with pytest.raises(NothingExportedError, match=r"no trajectories .*2 unreadable"):
        export(tmp_path, settings, [junk])
