"""Self-consistency end to end on scripted models: sample isolation, votes, early stopping, budgets, records.

The scripted models answer by the sample's seed (sample ``i`` runs with seed ``i``), so each sample's
answer is known in advance whatever order the parallel branches run in.
"""

from __future__ import annotations

import json
import threading

import pytest

from ponder.cli import main
from ponder.core.io import read_jsonl
from ponder.core.settings import load_settings
from ponder.graphs.self_consistency import SCConfig, run_self_consistency
from ponder.graphs.self_consistency.records import SelfConsistencyResult
from ponder.graphs.self_consistency.stopping import Budget
from ponder.models.scripted import ScriptedModel


def by_seed(answers: dict[int, str]):
    def respond(messages, params):
        if "Best:" in messages[-1]["content"]:
            return "Candidate 2 is right.\nBest: 2"
        return f"Thought: sample {params.seed}\nFinal Answer: {answers[params.seed]}"
    return ScriptedModel(respond)


def settings(tmp_path, **kw):
    kw.setdefault("tools", ["calculator"])
    return load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", **kw)


ANSWERS = {0: "42", 1: "41", 2: "42.0", 3: "$42", 4: "40", 5: "42", 6: "41", 7: "42"}


def test_majority_record_and_vote_table(tmp_path):
    result = run_self_consistency("Q?", config=SCConfig(samples=8), settings=settings(tmp_path), model=by_seed(ANSWERS))
    assert result.final_answer == "42" and result.winner_key == "42"
    assert [(r.key, r.votes) for r in result.votes] == [("42", 5), ("41", 2), ("40", 1)]
    assert result.agreement == pytest.approx(5 / 8)
    assert result.samples_run == 8 and result.stop_reason == "all_samples" and result.samples_saved == 0
    assert [s.seed for s in result.samples] == list(range(8))
    assert all(s.temperature == 0.7 for s in result.samples)  # greedy settings → the SC default temperature
    assert result.usage.model_calls == 8
    assert result.usage.prompt_tokens == sum(s.trajectory.usage.prompt_tokens for s in result.samples) > 0
    saved = list(read_jsonl(tmp_path / "runs" / "self_consistency.jsonl", SelfConsistencyResult))
    assert len(saved) == 1 and saved[0].votes == result.votes and len(saved[0].samples) == 8
    assert saved[0].chosen().final_answer == "42"


def test_early_stop_certain_matches_the_full_run_and_saves_samples(tmp_path):
    answers = {i: "42" for i in range(8)} | {5: "41"}
    full = run_self_consistency("Q?", config=SCConfig(samples=8), settings=settings(tmp_path), model=by_seed(answers),
                                write=False)
    early = run_self_consistency("Q?", config=SCConfig(samples=8, early_stop=True, wave=2),
                                 settings=settings(tmp_path), model=by_seed(answers), write=False)
    assert early.final_answer == full.final_answer == "42"
    # waves of 2: after 4 agreeing samples, 4 remain: a 4-4 tie would still go to 42 (voted first)
    assert early.samples_run == 4 and early.waves == 2 and early.stop_reason == "settled"
    assert early.samples_saved == 4
    # every sample costs the same tokens here, so the estimate is exactly what the full run spent on the 4 more
    assert early.tokens_saved_estimate == full.usage.total_tokens - early.usage.total_tokens > 0
    assert early.usage.total_tokens < full.usage.total_tokens


def test_early_stop_runs_on_while_the_vote_is_open(tmp_path):
    answers = {0: "1", 1: "2", 2: "1", 3: "2", 4: "1", 5: "1"}
    early = run_self_consistency("Q?", config=SCConfig(samples=6, early_stop=True, wave=2),
                                 settings=settings(tmp_path), model=by_seed(answers), write=False)
    # 2-2 after two waves: a third wave runs; once 3-2 with one sample left the vote is settled (a 3-3 tie
    # would go to "1", voted first), so the last sample may be cancelled (discarded) if it is still running
    assert early.waves == 3 and early.final_answer == "1"
    assert early.samples_run + early.samples_discarded == 6 and early.samples_run >= 5


def test_budget_in_samples_and_tokens(tmp_path):
    model = by_seed({i: "42" for i in range(8)})
    by_samples = run_self_consistency("Q?", config=SCConfig(samples=8, wave=2, budget=Budget("samples", 3)),
                                      settings=settings(tmp_path), model=model, write=False)
    assert by_samples.samples_run == 3 and by_samples.stop_reason == "budget"
    per_sample = by_samples.usage.total_tokens // 3
    by_tokens = run_self_consistency("Q?", config=SCConfig(samples=8, wave=2, budget=Budget("tokens", 3 * per_sample)),
                                     settings=settings(tmp_path), model=model, write=False)
    assert by_tokens.stop_reason == "budget" and by_tokens.samples_run == 4  # the wave that crossed the cap finishes


def test_weighted_vote_with_a_verifier(tmp_path):
    answers = {0: "7", 1: "7", 2: "9"}
    config = SCConfig(samples=3, vote="weighted",
                      verifier=lambda task, traj: 0.95 if traj.final_answer == "9" else 0.3)
    result = run_self_consistency("Q?", config=config, settings=settings(tmp_path), model=by_seed(answers), write=False)
    assert result.final_answer == "9"
    assert [round(r.weight, 2) for r in result.votes] == [0.95, 0.6]


def test_judge_picks_a_candidate_and_its_call_is_counted(tmp_path):
    model = by_seed({0: "7", 1: "7", 2: "9"})
    result = run_self_consistency("Q?", config=SCConfig(samples=3, vote="judge"), settings=settings(tmp_path),
                                  model=model, write=False)
    assert result.judge is not None and result.judge.choice == 2 and not result.judge.fallback
    assert result.final_answer == "9" and result.chosen_sample == 2
    assert result.usage.model_calls == 4
    judge_prompt = [c for c in model.calls if "Best:" in c[-1]["content"]][0][-1]["content"]
    assert "Candidate 1: 7" in judge_prompt and "Candidate 2: 9" in judge_prompt


def test_unusable_judge_reply_falls_back_to_the_vote(tmp_path):
    def respond(messages, params):
        if "Best:" in messages[-1]["content"]:
            return "I cannot decide."
        return f"Final Answer: {'7' if params.seed < 2 else '9'}"
    result = run_self_consistency("Q?", config=SCConfig(samples=3, vote="judge"), settings=settings(tmp_path),
                                  model=ScriptedModel(respond), write=False)
    assert result.judge.fallback and result.final_answer == "7"


def test_a_crashing_sample_abstains_and_the_others_vote(tmp_path):
    def respond(messages, params):
        if params.seed == 1:
            raise RuntimeError("backend hiccup")
        return "Final Answer: 5"
    result = run_self_consistency("Q?", config=SCConfig(samples=3), settings=settings(tmp_path),
                                  model=ScriptedModel(respond), write=False)
    assert result.final_answer == "5" and result.abstained == [1]
    assert "backend hiccup" in result.samples[1].trajectory.error


def test_samples_are_isolated_files_variables_and_memory(tmp_path):
    """Sample 3 writes a file, sets a variable in its python session and fails (a reflection is due):
    the other samples, which look only after sample 3 has done all that, see none of it."""
    from ponder.memory.context import MemoryContext
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.store import open_store

    done = threading.Event()
    probe = "Action: python\nAction Input: import os; print(os.path.exists('note.txt'), 'secret' in dir())"

    def respond(messages, params):
        if "Reply with the lesson only." in messages[-1]["content"]:
            return "Reflection: Check the units before answering."
        turn = sum(1 for m in messages if m["role"] == "assistant" and m["content"].startswith(("Action: python",
                                                                                                "Final")))
        if params.seed == 3:
            if turn == 0:
                return "Action: python\nAction Input: open('note.txt', 'w').write('x'); secret = 7; print(secret)"
            done.set()
            return "Final Answer: 99"
        if turn == 0:
            assert done.wait(30), "sample 3 never finished its tool call"
            return probe
        return "Final Answer: 10"

    s = settings(tmp_path, tools=["python"], memory="reflexion")
    with open_store(s, embedding_function=HashingEmbeddingFunction()) as store:
        memory = MemoryContext(store=store, mode="reflexion", label="10")
        seen: list[int] = []

        def on_sample(sample):
            seen.append(len(store.list(limit=1000)))

        result = run_self_consistency("How many?", config=SCConfig(samples=5), settings=s,
                                      model=ScriptedModel(respond), memory=memory, on_sample=on_sample, write=False)
        observations = {smp.index: smp.trajectory.steps[0].observation for smp in result.samples}
        assert "7" in observations[3]
        for index in (0, 1, 2, 4):
            assert observations[index].strip() == "False False", observations[index]
        assert seen == [0] * 5  # nothing reached the store while samples ran
        assert result.final_answer == "10" and result.chosen_sample == 0
        # sample 3 failed (99 ≠ 10) and wrote a reflection: held, then discarded (it lost the vote)
        assert result.memory["discarded"] >= 1 and result.memory["from_sample"] == 0
        assert len(store.list(limit=1000)) == len([r for r in result.memory["applied"] if r["status"] == "added"])


def test_cli_samples_json_and_bad_options(tmp_path, capsys, monkeypatch):
    script = tmp_path / "s.jsonl"
    script.write_text("\n".join(json.dumps(f"Final Answer: {a}") for a in ["3", "4", "3"]) + "\n")
    monkeypatch.setenv("PONDER_OUT_DIR", str(tmp_path / "runs"))
    code = main(["run", "Q?", "--model", f"scripted:{script}", "--samples", "3", "--json", "--label", "3"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert out["answer"] == "3" and out["samples_run"] == 3 and out["correct"] is True
    assert sorted(v["votes"] for v in out["votes"]) == [1, 2]
    for bad, message in [(["--vote", "loudest"], "--vote"), (["--stop-rule", "x", "--early-stop"], "--stop-rule"),
                         (["--budget", "lots"], "budget"), (["--samples", "0", "--early-stop"], "--samples"),
                         (["--answer-kind", "poem"], "--answer-kind")]:
        code = main(["run", "Q?", "--model", f"scripted:{script}", "--samples", "2", *bad])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
