"""``ponder run --samples N --trials K --memory reflexion``: the composed strategy from the command line.

The model is scripted (a function of the prompt): it answers 2.5 (wrong) until a lesson is in its prompt, then
250; asked to reflect, it writes the lesson. The memory store is the real Chroma store on disk, embedding with
the hashing test double.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.core.io import read_jsonl
from ponder.core.settings import load_settings
from ponder.graphs.self_consistency.records import SelfConsistencyResult
from ponder.memory import store as store_module
from ponder.models.scripted import ScriptedModel

TASK = "A pen costs 2.50 dollars. How many cents does the pen cost?"
LESSON = "Convert dollars to cents by multiplying by 100"


@pytest.fixture
def learner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ScriptedModel:
    """The CLI loads this model and opens its memory under ``tmp_path`` with the hashing embedder."""
    import ponder.models.spec as spec_module
    from ponder.memory.embeddings import HashingEmbeddingFunction

    lock = threading.Lock()

    def reply(messages, params) -> str:
        text = "\n".join(m["content"] for m in messages)
        if "Reply with the lesson only." in messages[-1]["content"]:
            return f"Reflection: {LESSON}."
        with lock:
            return "Thought: cents.\nFinal Answer: 250" if LESSON in text else "Thought: dollars.\nFinal Answer: 2.5"

    model = ScriptedModel(reply)
    real_open = store_module.open_store
    monkeypatch.setattr(store_module, "open_store",
                        lambda s: real_open(s, embedding_function=HashingEmbeddingFunction()))
    monkeypatch.setattr(spec_module, "load_model", lambda spec, settings=None: model)
    monkeypatch.setenv("PONDER_MEMORY_PATH", str(tmp_path / "memory"))
    return model


def test_trials_of_samples_pretty_output(learner, tmp_path, capsys):
    argv = ["run", TASK, "--samples", "3", "--trials", "2", "--memory", "reflexion", "--label", "250",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 trials of a 3-sample majority vote of react, memory reflexion" in printed
    assert "trial 1: 2.5 (solved, wrong)" in printed and "trial 2: 250 (solved, correct)" in printed  # as they end
    assert printed.count("\nsample ") == 6 and "Final Answer: 250" in printed and "\ncorrect" in printed
    assert "trials: 250 (solved)\n  self_consistency: 2.5 (solved, agreement 100%)" in printed


def test_samples_trials_and_memory_run_the_composed_strategy(learner, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", TASK, "--samples", "3", "--trials", "2", "--memory", "reflexion", "--label", "250",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    # trial 1 votes 2.5 (wrong) and reflects; trial 2's samples read the lesson and vote 250
    assert result["kind"] == "trials" and result["answer"] == "250" and result["correct"] is True
    assert [(a["kind"], a["answer"], a["agreement"]) for a in result["attempts"]] == [
        ("self_consistency", "2.5", 1.0), ("self_consistency", "250", 1.0)]
    assert len(result["trajectories"]) == 6 and result["usage"]["model_calls"] >= 6
    votes = list(read_jsonl(out / "self_consistency.jsonl", SelfConsistencyResult))
    assert [v.final_answer for v in votes] == ["2.5", "250"]
    with store_module.open_store(load_settings()) as store:  # the CLI closed its own
        assert [LESSON in r.text for r in store.list("reflection")] == [True]


def test_samples_of_trials_pretty_output(learner, tmp_path, capsys):
    argv = ["run", TASK, "--samples", "2", "--trials", "2", "--memory", "reflexion", "--label", "250",
            "--compose", "samples_of_trials", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "a 2-sample majority vote over 2 trials each of react, memory reflexion" in printed
    assert printed.count("\nsample ") == 2  # each sample as it ends (its trials run unseen, in parallel)
    assert "self_consistency: 250 (solved, agreement 100%)" in printed  # the outcome tree
    assert printed.count("\n  trials: 250 (solved)") == 2
    assert "Final Answer: 250" in printed and "correct" in printed
    (vote,) = read_jsonl(tmp_path / "out" / "self_consistency.jsonl", SelfConsistencyResult)
    assert [[t.final_answer for t in (*s.earlier, s.trajectory)] for s in vote.samples] == [["2.5", "250"]] * 2


def test_samples_with_memory_alone_compose_too(learner, tmp_path, capsys):
    argv = ["run", TASK, "--samples", "2", "--memory", "reflexion", "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["kind"] == "trials" and [a["kind"] for a in result["attempts"]] == ["self_consistency"]
    assert result["answer"] == "2.5" and "correct" not in result  # no label: a solved vote ends the trials
