"""HumanEval best-of-N: N completions scored by the visible examples, the best one graded by the hidden tests."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

import ponder.envs.code_best_of_n as bon
from ponder.cli import main
from ponder.core.errors import ConfigError
from ponder.core.io import read_jsonl
from ponder.core.records import Trajectory
from ponder.core.settings import load_settings
from ponder.envs.context import EvalOptions
from ponder.envs.registry import get_suite
from ponder.envs.runner import run_eval
from ponder.models.scripted import ScriptedModel


@pytest.fixture
def settings(tmp_path, data_dir):
    return load_settings(data_dir=data_dir, out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", seed=40)


@pytest.fixture
def row(data_dir) -> dict:
    """The first HumanEval problem (has_close_elements: its docstring shows two doctest examples)."""
    with open(data_dir / "humaneval" / "humaneval.jsonl") as fh:
        return json.loads(next(itertools.islice(fh, 1)))


def wrong_then_right(row: dict, base_seed: int) -> ScriptedModel:
    """Sample 0 (seed ``base``) writes a wrong function, sample 1 the canonical one; concurrent calls allowed."""
    wrong = f"```python\ndef {row['entry_point']}(numbers, threshold):\n    return None\n```"
    right = f"```python\n{row['prompt']}{row['canonical_solution']}```"
    return ScriptedModel(lambda messages, params: wrong if params.seed == base_seed else right, continuous=True)


def evaluate(tmp_path: Path, settings, model: ScriptedModel, **kw):
    options = EvalOptions(suite="humaneval", limit=1, out_dir=tmp_path / "run", **kw)
    return run_eval(get_suite("humaneval"), options, settings, model=model, quiet=True)


def test_best_of_n_picks_the_completion_that_passes_the_visible_examples(tmp_path, settings, row):
    single = evaluate(tmp_path / "single", settings, wrong_then_right(row, 40)).results[0]
    assert not single.success and single.metrics == {"pass@1": 0.0}  # pass@1 takes sample 0, the wrong one

    model = wrong_then_right(row, 40)
    r = evaluate(tmp_path, settings, model, strategy="best_of_n", samples=2).results[0]
    assert r.success and r.metrics == {"pass": 1.0} and r.samples == 2
    meta = r.metadata
    assert meta["n"] == 2 and meta["picked"] == 1 and meta["verifier"] == "execution"
    assert meta["scores"] == [0.0, 1.0] and meta["visible_examples"] == 2
    assert "0 of 2 visible examples passed" in meta["details"][0]
    assert r.prediction is not None and "def has_close_elements" in r.prediction
    trajs = {t.id: t for t in read_jsonl(tmp_path / "run" / "trajectories.jsonl", Trajectory)}
    assert [trajs[i].metadata["best_of_n_index"] for i in r.trajectory_ids] == [0, 1]
    wrong, right = (trajs[i] for i in r.trajectory_ids)
    assert [len(wrong.steps), len(right.steps)] == [1, 1] and wrong.steps[0].kind == "program"
    assert "hidden tests" not in (wrong.steps[0].observation or "")
    assert right.steps[0].observation == "2 of 2 visible examples passed\nhidden tests: passed"
    assert right.metadata["picked"] and not wrong.metadata["picked"]


def test_usage_counts_every_generation_and_the_verifier(tmp_path, settings, row):
    model = wrong_then_right(row, 40)
    r = evaluate(tmp_path, settings, model, strategy="best_of_n", samples=3, verifier="execution,self").results[0]
    trajs = {t.id: t for t in read_jsonl(tmp_path / "run" / "trajectories.jsonl", Trajectory)}
    generated = [trajs[i].usage for i in r.trajectory_ids]
    verifier = r.metadata["verifier_usage"]
    assert len(model.calls) == 3 and len(model.option_calls) == 3  # 3 generations, 3 self scores
    assert r.usage.model_calls == 6 and verifier["model_calls"] == 3
    assert r.usage.prompt_tokens == sum(u.prompt_tokens for u in generated) + verifier["prompt_tokens"]
    assert r.usage.completion_tokens == sum(u.completion_tokens for u in generated) > 0
    assert r.usage.tool_calls == 3 + 1  # one visible-examples session per sample, one hidden grading
    assert r.metadata["verifier"] == "execution:0.5+self:0.5" and r.metadata["scores"] == [0.25, 0.75, 0.75]
    assert r.metadata["picked"] == 1 and r.success  # ties with sample 2 go to the earlier one


def test_the_verifier_never_sees_the_hidden_tests(tmp_path, settings, row, monkeypatch):
    seen: list[str] = []
    real = bon.open_verifier_sandbox

    class Spy:
        def __init__(self, inner):
            self.inner, self.output_chars = inner, inner.output_chars

        def run(self, code: str):
            seen.append(code)
            return self.inner.run(code)

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(bon, "open_verifier_sandbox", lambda s: Spy(real(s)))
    r = evaluate(tmp_path, settings, wrong_then_right(row, 40), strategy="best_of_n", samples=2).results[0]
    assert r.success and r.metadata["scores"] == [0.0, 1.0]
    assert len(seen) == 2 and all("has_close_elements([1.0, 2.0, 3.0], 0.5)" in code for code in seen)
    hidden = [line.strip() for line in row["test"].splitlines() if line.strip().startswith("assert")]
    assert hidden and "def check(candidate)" in row["test"]
    for code in seen:
        assert "def check(candidate)" not in code
        assert not any(line in code for line in hidden)


@pytest.mark.parametrize(("options", "refused"), [
    ({"strategy": "beam"}, "--strategy beam"),
    ({"strategy": "lats"}, "--strategy lats"),
    ({"strategy": "refine"}, "--strategy refine"),
    ({"strategy": "sc", "samples": 3}, "--strategy sc"),
    ({"samples": 3}, "--strategy sc (--samples N without --strategy best_of_n)"),
    ({"strategy": "adaptive"}, "--strategy adaptive"),
    ({"trials": 2}, "--trials"),
    ({"memory": "reflexion"}, "--memory"),
    ({"strategy": "best_of_n", "trials": 2}, "--trials"),
    ({"strategy": "best_of_n", "vote": "weighted"}, "--vote weighted"),
    ({"strategy": "best_of_n", "verifier": "env"}, "--verifier env"),
])
def test_unsupported_options_are_refused_in_one_line(tmp_path, options, refused):
    with pytest.raises(ConfigError) as info:
        get_suite("humaneval").check_options(EvalOptions(suite="humaneval", out_dir=tmp_path, **options))
    message = str(info.value)
    assert len(message.splitlines()) == 1 and message.startswith("humaneval measures pass@1: ")
    assert f"{refused} is not supported" in message and "--strategy best_of_n --samples N" in message


def test_supported_options_pass(tmp_path):
    suite = get_suite("humaneval")
    for options in ({}, {"strategy": "single"}, {"strategy": "best_of_n"},
                    {"strategy": "best_of_n", "samples": 4, "verifier": "execution,self"}):
        suite.check_options(EvalOptions(suite="humaneval", out_dir=tmp_path, **options))


def test_cli_refuses_lats_in_one_line(tmp_path, capsys):
    assert main(["eval", "humaneval", "--strategy", "lats", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--strategy lats is not supported" in err, err
    assert not (tmp_path / "o" / "results.jsonl").exists()


@pytest.mark.integration
def test_best_of_two_on_the_embedded_model(tmp_path, data_dir):
    from ponder.models.spec import load_model

    settings = load_settings(model="embedded", data_dir=data_dir, out_dir=tmp_path, max_tokens=256)
    model = load_model("embedded", settings)
    r = evaluate(tmp_path, settings, model, strategy="best_of_n", samples=2).results[0]
    meta = r.metadata
    assert r.samples == 2 and meta["n"] == 2 and len(r.trajectory_ids) == 2 and meta["visible_examples"] == 2
    assert meta["scores"][meta["picked"]] == max(meta["scores"]) and set(r.metrics) == {"pass"}
    assert r.usage.model_calls == 2 and r.usage.completion_tokens > 0 and r.usage.tool_calls >= 1
    assert r.status in ("solved", "failed")
