"""QA, math and code suites on the scripted model: agents, search tools, EM / F1, humaneval in the sandbox."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.code import completion_from_reply
from ponder.envs.context import EvalOptions
from ponder.envs.registry import get_suite
from ponder.envs.runner import run_eval
from ponder.models.scripted import ScriptedModel

Reply = Callable[[str, int], str]


def scripted(reply: Reply) -> ScriptedModel:
    """A model answering ``reply(question, observations so far)`` (order-independent, so workers may race)."""
    def respond(messages, params):
        starts = [i for i, m in enumerate(messages) if m["role"] == "user" and m["content"].startswith("Question: ")]
        first = starts[-1] if starts else 0
        question = messages[first]["content"].removeprefix("Question: ") if starts else messages[-1]["content"]
        seen = sum(1 for m in messages[first + 1:] if m["role"] == "user" and m["content"].startswith("Observation"))
        return reply(question, seen)
    return ScriptedModel(respond)


@pytest.fixture
def settings(tmp_path, data_dir):
    return load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache")


def evaluate(tmp_path: Path, settings, suite: str, model: ScriptedModel | None, limit: int = 3, **kw):
    options = EvalOptions(suite=suite, limit=limit, out_dir=tmp_path / suite, **kw)
    return run_eval(get_suite(suite), options, settings, model=model, quiet=True)


def gold_rows(data_dir: Path, rel: str, n: int) -> list[dict]:
    with open(data_dir / rel) as fh:
        return [json.loads(line) for line in itertools.islice(fh, n)]


@pytest.mark.parametrize(("suite", "rel"), [("gsm8k", "gsm8k/test_dev.jsonl"), ("svamp", "svamp/svamp.jsonl")])
def test_math_suites_exact_numeric_match(tmp_path, settings, data_dir, suite, rel):
    rows = gold_rows(data_dir, rel, 3)
    answers = {r["question"]: r["answer"] for r in rows}
    wrong = rows[2]["question"]

    def reply(question: str, seen: int) -> str:
        if seen == 0:
            return "Thought: compute\nAction: calculator\nAction Input: 2*3"
        gold = answers[question]
        return f"Final Answer: {int(gold) + 1 if question == wrong else '$' + gold + '.00'}"

    run = evaluate(tmp_path, settings, suite, scripted(reply), workers=2)
    assert [r.success for r in run.results] == [True, True, False]
    assert run.results[2].failure == "wrong_answer" and run.results[0].metrics == {"em": 1.0}
    assert all(r.usage.tool_calls == 1 and r.usage.model_calls == 2 for r in run.results)
    trajs = {t.id: t for t in read_jsonl(tmp_path / suite / "trajectories.jsonl", Trajectory)}
    for r in run.results:
        assert trajs[r.trajectory_ids[0]].metadata["episode_id"] == r.episode_id


def test_pal_agent_on_gsm8k(tmp_path, settings, data_dir):
    gold = gold_rows(data_dir, "gsm8k/test_dev.jsonl", 1)[0]["answer"]
    model = scripted(lambda q, n: f"```python\ndef solution():\n    return {gold}\n```")
    run = evaluate(tmp_path, settings, "gsm8k", model, limit=1, agent="pal")
    assert run.results[0].success and run.results[0].prediction == gold and run.results[0].usage.tool_calls == 1


@pytest.mark.parametrize(("suite", "title"), [("hotpotqa", "VIVA Media"),
                                              ("musique", "Journal of Psychotherapy Integration")])
def test_search_suites_use_their_own_corpus(tmp_path, settings, suite, title):
    observations: list[str] = []
    lock = threading.Lock()

    def reply(question: str, seen: int) -> str:
        if seen == 0:
            return f"Thought: look it up\nAction: search\nAction Input: {title}"
        return "Final Answer: unknown"

    model = scripted(reply)
    run = evaluate(tmp_path, settings, suite, model, limit=1)
    with lock:
        observations = [m["content"] for call in model.calls for m in call if m["content"].startswith("Observation")]
    assert observations and "Could not find" not in observations[0], observations
    r = run.results[0]
    assert r.usage.tool_calls == 1 and not r.success and r.failure == "wrong_answer"
    assert set(r.metrics) == {"em", "f1"}
    s = get_suite(suite).settings_for(settings)
    assert s.tools == ["search", "lookup"] and s.search_corpus == settings.data_dir / suite / "corpus.jsonl"


def test_musique_em_f1_with_aliases(tmp_path, settings, data_dir):
    # row 0: answer "G. Stanley Hall", alias "Stanley Hall"; row 1: answer "35"
    rows = gold_rows(data_dir, "musique/questions.jsonl", 2)
    assert rows[0]["answer"] == "G. Stanley Hall" and rows[0]["answer_aliases"] == ["Stanley Hall"]
    replies = {rows[0]["question"]: "Final Answer: stanley hall", rows[1]["question"]: "Final Answer: 35 stores"}
    run = evaluate(tmp_path, settings, "musique", scripted(lambda q, n: replies[q]), limit=2)
    first, second = run.results
    assert first.success and first.metrics == {"em": 1.0, "f1": 1.0} and first.tier == "2hop"
    # "35 stores" vs "35": EM 0; tokens 35 stores vs 35 -> P 1/2, R 1 -> F1 2/3
    assert not second.success and second.metrics["em"] == 0.0 and second.metrics["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert run.summary.metrics["f1"].value == pytest.approx((1 + 2 / 3) / 2, abs=1e-6)


def test_hotpotqa_partial_answer_f1(tmp_path, settings, data_dir):
    row = gold_rows(data_dir, "hotpotqa/questions.jsonl", 1)[0]
    assert row["answer"] == "Gesellschaft mit beschränkter Haftung"
    run = evaluate(tmp_path, settings, "hotpotqa", scripted(lambda q, n: "Final Answer: the Gesellschaft"), limit=1)
    r = run.results[0]
    # gesellschaft vs gesellschaft mit beschränkter haftung: P 1, R 1/4 -> F1 0.4
    assert r.score == 0.0 and r.metrics["f1"] == pytest.approx(0.4) and r.tier == "bridge"


def test_self_consistency_samples_vote(tmp_path, settings, data_dir):
    gold = gold_rows(data_dir, "gsm8k/test_dev.jsonl", 1)[0]["answer"]
    counter = itertools.count()
    lock = threading.Lock()

    def reply(question: str, seen: int) -> str:
        with lock:
            n = next(counter)
        return f"Final Answer: {gold if n % 3 else int(gold) + 1}"  # 2 of 3 right

    run = evaluate(tmp_path, settings, "gsm8k", scripted(reply), limit=1, samples=3)
    r = run.results[0]
    assert r.success and r.prediction == gold and r.samples == 3 and len(r.trajectory_ids) == 3
    assert r.metadata["self_consistency_id"] and r.usage.model_calls == 3
    stored = {t.id for t in read_jsonl(tmp_path / "gsm8k" / "trajectories.jsonl", Trajectory)}
    assert set(r.trajectory_ids) <= stored


def test_self_consistency_early_stop_rule_reaches_the_vote(tmp_path, settings, data_dir):
    gold = gold_rows(data_dir, "gsm8k/test_dev.jsonl", 1)[0]["answer"]
    model = scripted(lambda q, n: f"Final Answer: {gold}")
    certain = evaluate(tmp_path / "c", settings, "gsm8k", model, limit=1, samples=8, early_stop=True).results[0]
    beta = evaluate(tmp_path / "b", settings, "gsm8k", model, limit=1, samples=8, early_stop=True,
                    stop_rule="beta").results[0]
    # waves of 4: 4 agreeing of 8 is settled for beta (P = 0.97) and, with the tie-break, for certain too
    assert certain.success and beta.success
    assert certain.metadata["samples_run"] == beta.metadata["samples_run"] == 4
    from ponder.graphs.self_consistency.records import SelfConsistencyResult

    rules = [next(read_jsonl(tmp_path / run / "gsm8k" / "self_consistency.jsonl", SelfConsistencyResult)).stop_rule
             for run in ("c", "b")]
    assert rules == ["certain", "beta"]


def test_gold_policy_is_a_harness_check(tmp_path, settings):
    run = evaluate(tmp_path, settings, "hotpotqa", None, limit=4, policy="gold", workers=2)
    assert run.summary.successes == 4 and all(r.policy_kind == "harness" for r in run.results)
    assert all(r.metrics["f1"] == 1.0 for r in run.results)


# ---------------------------------------------------------------- humaneval

def test_completion_from_reply_forms():
    full = "```python\nimport math\n\ndef f(x):\n    return math.floor(x)\n```\nThis works."
    assert completion_from_reply(full, "f") == "\nimport math\n\ndef f(x):\n    return math.floor(x)\n"
    assert completion_from_reply("```python\nreturn x + 1\n```", "f") == "    return x + 1\n"
    assert completion_from_reply("    return x + 1", "f") == "    return x + 1\n"
    assert completion_from_reply("  def f(x):\n      return 1", "f") == "\ndef f(x):\n    return 1\n"
    assert completion_from_reply("", "f") is None


def test_humaneval_runs_the_tests_in_the_sandbox(tmp_path, settings, data_dir):
    rows = gold_rows(data_dir, "humaneval/humaneval.jsonl", 4)
    prompts = {r["prompt"].rstrip("\n"): r for r in rows}

    def reply(message: str, seen: int) -> str:
        row = next(r for p, r in prompts.items() if p in message)
        i = rows.index(row)
        if i == 0:   # the complete function, correct
            return f"```python\n{row['prompt']}{row['canonical_solution']}```"
        if i == 1:   # the body only, correct
            return row["canonical_solution"]
        if i == 2:   # a wrong function
            return f"```python\ndef {row['entry_point']}(*args):\n    return None\n```"
        return ""    # nothing

    run = evaluate(tmp_path, settings, "humaneval", scripted(reply), limit=4, workers=2)
    assert [r.success for r in run.results] == [True, True, False, False]
    assert [r.failure for r in run.results] == ["", "", "tests_failed", "no_answer"]
    error = run.results[2].error or ""  # the traceback of HumanEval's check() on the wrong function
    assert error.endswith("\nAssertionError") and "assert candidate(3.5) == 0.5" in error, error
    assert run.results[0].metrics == {"pass@1": 1.0} and run.results[0].usage.model_calls == 1
    trajs = {t.id: t for t in read_jsonl(tmp_path / "humaneval" / "trajectories.jsonl", Trajectory)}
    assert trajs[run.results[0].trajectory_ids[0]].steps[0].observation == "passed"


def test_humaneval_canonical_harness(tmp_path, settings):
    run = evaluate(tmp_path, settings, "humaneval", None, limit=3, policy="canonical")
    assert run.summary.successes == 3 and run.results[0].policy_kind == "harness"


@pytest.mark.slow  # waits out the 1 s sandbox timeout
def test_humaneval_endless_solution_is_killed_by_the_timeout(tmp_path, settings, data_dir):
    row = gold_rows(data_dir, "humaneval/humaneval.jsonl", 1)[0]
    loop = scripted(lambda m, n: f"```python\ndef {row['entry_point']}(*a):\n    while True:\n        pass\n```")
    fast = settings.model_copy(update={"exec_timeout": 1.0})
    options = EvalOptions(suite="humaneval", limit=1, out_dir=tmp_path / "loop")
    r = run_eval(get_suite("humaneval"), options, fast, model=loop, quiet=True).results[0]
    assert not r.success and r.failure == "tests_failed" and r.metadata["kill_reason"] == "timeout"


def test_trials_retry_until_correct(tmp_path, settings, data_dir):
    row = gold_rows(data_dir, "gsm8k/test_dev.jsonl", 1)[0]
    calls = itertools.count()
    model = scripted(lambda q, n: f"Final Answer: {row['answer'] if next(calls) >= 1 else 0}")
    run = evaluate(tmp_path, settings, "gsm8k", model, limit=1, trials=3)  # --memory none: plain retries
    r = run.results[0]
    assert r.success and r.trials == 2 and len(r.trajectory_ids) == 2 and r.usage.model_calls == 2


def test_trials_of_votes_retry_until_the_vote_is_correct(tmp_path, settings, data_dir):
    row = gold_rows(data_dir, "gsm8k/test_dev.jsonl", 1)[0]
    calls = itertools.count()
    lock = threading.Lock()

    def reply(question: str, seen: int) -> str:
        with lock:
            n = next(calls)
        return f"Final Answer: {row['answer'] if n >= 3 else 0}"  # the first vote is wrong, the second right

    run = evaluate(tmp_path, settings, "gsm8k", scripted(reply), limit=1, samples=3, trials=3)
    r = run.results[0]
    assert r.success and r.prediction == row["answer"] and r.trials == 2 and r.usage.model_calls == 6
    stored = list(read_jsonl(tmp_path / "gsm8k" / "trajectories.jsonl", Trajectory))
    assert {t.id for t in stored} == set(r.trajectory_ids) and len(stored) == 6
    assert sorted((t.metadata["trial"], t.metadata["sample"]) for t in stored) == [(1, 0), (1, 1), (1, 2),
                                                                                   (2, 0), (2, 1), (2, 2)]
    assert all(t.metadata["episode_id"] == r.episode_id for t in stored)
