"""``ponder run --strategy best_of_n|refine|beam|lats|adaptive``: parsing, dispatch and the printed summary.

The model is scripted (``--model scripted:FILE``). The strategy classes are replaced by a fake (installed as the
module ``build_strategy`` imports each from) that runs one real agent run on the scripted model and returns it
as that strategy's outcome: a scored candidate, the usage with a verifier call on top, and for ``beam`` / ``lats``
a search tree record; so these tests check the command line (options reaching the strategy, the summary, the
JSON object, bad values) and not the algorithms (their own tests do).
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from ponder.cli import main
from ponder.core.records import Usage
from ponder.graphs.search.tree import SEARCH_FILE, SearchTree, TreeNode
from ponder.graphs.strategies.base import Candidate, Outcome, StrategyContext
from ponder.graphs.strategies.single import Single

MODULES = {"best_of_n": ("ponder.graphs.strategies.best_of_n", "BestOfN"),
           "refine": ("ponder.graphs.strategies.refine", "Refine"),
           "beam": ("ponder.graphs.search.beam", "BeamSearch"),
           "lats": ("ponder.graphs.search.lats", "LATS"),
           "adaptive": ("ponder.graphs.strategies.adaptive", "Adaptive")}
VERIFIER = Usage(prompt_tokens=1000, completion_tokens=1, model_calls=1)


def _fake(kind: str, made: list[tuple[str, tuple[Any, ...]]]) -> type:
    class Fake:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append((kind, args))

        def run(self, task: str, ctx: StrategyContext, label: str | None = None) -> Outcome:
            one = Single().run(task, ctx, label)
            records = []
            if kind in ("beam", "lats"):
                nodes = [TreeNode(id=0), TreeNode(id=1, parent=0, depth=1), TreeNode(id=2, parent=1, depth=2)]
                records = [SearchTree(strategy=kind, task=task, nodes=nodes, chosen=[0, 1, 2], answer=one.answer,
                                      stop_reason="solved")]
            return Outcome.of(kind, task, [one], one, extra=VERIFIER, records=records,  # type: ignore[arg-type]
                              candidates=[Candidate(answer="7", score=0.2), Candidate(answer=one.answer, score=0.9)])

    return Fake


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[Any, ...]]]:
    """The strategies built, as ``(kind, constructor args)``."""
    from ponder.core.console import console

    monkeypatch.setattr(console, "width", 400)  # no wrapping of the summary lines
    out: list[tuple[str, tuple[Any, ...]]] = []
    for kind, (module, cls) in MODULES.items():
        monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{cls: _fake(kind, out)}))
    return out


def script(tmp_path, *texts: str) -> str:
    path = tmp_path / "script.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in texts))
    return f"scripted:{path}"


@pytest.mark.parametrize(("argv", "kind", "facts"), [
    (["--strategy", "lats", "--budget", "20000t", "--verifier", "self,env"], "lats",
     "lats of react (verifier self,env, 3 children per expansion, exploration 1.0, budget 20000t)"),
    (["--strategy", "beam", "--beam-width", "2", "--verifier", "prm", "--prm", "embedded"], "beam",
     "beam of react (verifier prm, width 2, 3 candidates per beam)"),
    (["--strategy", "best_of_n", "--samples", "4", "--vote", "weighted"], "best_of_n",
     "best_of_n of react (verifier default, N=4, weighted vote)"),
    (["--strategy", "refine", "--rounds", "2", "--verifier", "self"], "refine",
     "refine of react (verifier self, 2 rounds, accept 0.8)"),
    (["--strategy", "adaptive", "--budget", "4000t"], "adaptive",
     "adaptive of react (verifier default, budget 4000t)"),
])
def test_each_strategy_runs_and_prints_a_summary(made, tmp_path, capsys, argv, kind, facts):
    model = script(tmp_path, "Thought: add\nAction: calculator\nAction Input: 2+3", "Final Answer: 5")
    out = tmp_path / "out"
    assert main(["run", "What is 2+3?", "--model", model, "--out", str(out), "--label", "5", *argv]) == 0
    printed = capsys.readouterr().out
    assert [k for k, _ in made] == [kind]
    assert f"{facts}, memory none" in printed
    assert "Final Answer: 5 (score 0.90)" in printed and "\ncorrect" in printed
    # the agent's two calls (2 model calls, prompt tokens counted by the scripted model) plus the verifier's
    assert f"{kind} · 1 trajectories · 3 model calls · " in printed and "tokens (verifier included)" in printed
    if kind in ("beam", "lats"):
        assert f"3 nodes, depth 2, stop: solved → {out / SEARCH_FILE}" in printed
    else:
        assert "search tree" not in printed


def test_the_spec_reaches_the_search(made, tmp_path, capsys):
    model = script(tmp_path, "Final Answer: 5")
    argv = ["run", "q", "--model", model, "--out", str(tmp_path), "--strategy", "lats", "--budget", "20000t",
            "--verifier", "self:0.5, env", "--iterations", "8", "--exploration", "0.5", "--json"]
    assert main(argv) == 0
    ((kind, (spec,)),) = made
    assert (kind, spec.budget, spec.verifier, spec.iterations, spec.exploration) == (
        "lats", "20000t", "self:0.5,env", 8, 0.5)
    result = json.loads(capsys.readouterr().out)
    assert (result["strategy"], result["kind"], result["answer"], result["score"]) == ("lats", "lats", "5", 0.9)
    assert result["usage"]["model_calls"] == 2 and result["usage"]["prompt_tokens"] > 1000  # verifier included
    assert result["search_trees"][0]["nodes"] == 3 and result["search_path"] == str(tmp_path / SEARCH_FILE)


def test_samples_vote_over_a_search(made, tmp_path, capsys):
    model = script(tmp_path, *["Final Answer: 5"] * 3)
    argv = ["run", "q", "--model", model, "--out", str(tmp_path), "--strategy", "beam", "--samples", "3", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [k for k, _ in made] == ["beam"]  # one strategy object, run once per sample
    assert result["kind"] == "self_consistency" and result["answer"] == "5" and result["agreement"] == 1.0
    assert len(result["search_trees"]) == 3


def test_sc_and_best_of_n_default_to_five_samples(made, tmp_path, capsys):
    model = script(tmp_path, *["Final Answer: 5"] * 6)
    assert main(["run", "q", "--model", model, "--out", str(tmp_path), "--strategy", "sc", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["samples_run"] == 5
    assert main(["run", "q", "--model", model, "--out", str(tmp_path), "--strategy", "best_of_n", "--json"]) == 0
    ((kind, (_, n, verifier)),) = made
    assert (kind, n, verifier) == ("best_of_n", 5, None)


@pytest.mark.parametrize(("argv", "message"), [
    (["--strategy", "sc", "--samples", "1"], "--strategy sc needs --samples N (N > 1)"),
    (["--strategy", "bogus"], "'bogus' is not one of 'single', 'sc', 'best_of_n', 'beam', 'lats', 'refine', "
                              "'adaptive'"),
    (["--strategy", "lats", "--verifier", "nope"], "--verifier: unknown verifier 'nope'"),
    (["--strategy", "beam", "--beam-width", "0"], "Invalid value for '--beam-width'"),
    (["--beam-width", "5"], "--beam-width applies to --strategy beam"),
    (["--strategy", "lats", "--rounds", "2"], "--rounds applies to --strategy refine"),
    (["--strategy", "best_of_n", "--vote", "judge"], "--vote judge applies to --strategy sc"),
    (["--strategy", "lats", "--budget", "lots"], "--budget"),
])
def test_bad_values_are_one_line_and_exit_2(made, argv, message, capsys):
    assert main(["run", "q", "--model", "scripted:/dev/null", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ponder: error:") and message in err and len(err.splitlines()) == 1
    assert made == []


@pytest.fixture
def steady(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI loads a scripted model that always answers 5 after one calculator call (the real strategies run)."""
    import ponder.models.spec as spec_module
    from ponder.core.console import console
    from ponder.models.scripted import ScriptedModel

    def reply(messages, params) -> str:
        if "Observation: 5" in messages[-1]["content"]:
            return "Thought: done\nFinal Answer: 5"
        return "Thought: add\nAction: calculator\nAction Input: 2+3"

    model = ScriptedModel(reply)
    monkeypatch.setattr(spec_module, "load_model", lambda spec, settings=None: model)
    monkeypatch.setattr(console, "width", 400)


@pytest.mark.parametrize("argv", [
    ["--strategy", "best_of_n", "--samples", "2"], ["--strategy", "refine", "--rounds", "1", "--verifier", "self"],
    ["--strategy", "beam", "--verifier", "self", "--beam-width", "2", "--expansions", "2"],
    ["--strategy", "lats", "--budget", "20000t", "--verifier", "self,env"], ["--strategy", "adaptive"],
], ids=lambda argv: argv[1])
def test_the_real_strategies_run_end_to_end(steady, tmp_path, capsys, argv):
    out = tmp_path / "out"
    assert main(["run", "What is 2+3?", "--out", str(out), "--label", "5", *argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["strategy"], result["kind"], result["answer"], result["correct"]) == (argv[1], argv[1], "5", True)
    # the agent's calls (two per run) and the verifier's
    assert result["usage"]["model_calls"] > 2 * len(result["trajectories"]) or argv[1] == "adaptive"
    if argv[1] in ("beam", "lats"):
        (tree,) = (json.loads(line) for line in (out / SEARCH_FILE).read_text().splitlines())
        assert tree["id"] == result["search_trees"][0]["id"] and len(tree["nodes"]) >= 3


@pytest.mark.integration
def test_lats_from_the_command_line_on_the_embedded_model(tmp_path, capsys):
    """The default model, a small token budget: the search runs, counts its value calls and writes its tree."""
    out = tmp_path / "out"
    argv = ["run", "What is 2+3?", "--strategy", "lats", "--budget", "3000t", "--verifier", "self", "--out", str(out),
            "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["strategy"] == "lats" and result["status"] in ("solved", "max_steps", "parse_error")
    (tree,) = result["search_trees"]
    assert tree["nodes"] >= 2 and tree["stop_reason"]
    steps = tree["nodes"] - 1  # one model call per node but the root; the rest are the value's calls
    assert result["usage"]["model_calls"] > steps and result["usage"]["prompt_tokens"] > 0
    assert tree["id"] in (out / SEARCH_FILE).read_text()
