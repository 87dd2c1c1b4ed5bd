"""The execution verifier: PAL programs, and code graded on the docstring's visible examples only.

Code runs in the real local sandbox (through the trusted grader); a recording executor keeps every program
sent to it, so the tests can check what reached the sandbox (never a dataset's hidden tests) and that every
session was closed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.core.errors import ConfigError
from ponder.core.records import Step
from ponder.core.settings import load_settings
from ponder.graphs.verifiers.base import Trace, VerifyContext
from ponder.graphs.verifiers.examples import entry_point_of, visible_examples
from ponder.graphs.verifiers.execution import ExecutionVerifier, candidate_program
from ponder.models.scripted import ScriptedModel
from ponder.tools.sandbox import open_sandbox


class Recording:
    """Opens real sandbox sessions and records every program run and every close."""

    def __init__(self) -> None:
        self.settings = load_settings()
        self.programs: list[str] = []
        self.opened = 0
        self.closed = 0

    def __call__(self):
        session = open_sandbox(self.settings)
        self.opened += 1
        owner = self

        class Session:
            output_chars = session.output_chars

            def run(self, code: str):
                owner.programs.append(code)
                return session.run(code)

            def close(self) -> None:
                owner.closed += 1
                session.close()

        return Session()


def never():
    raise AssertionError("the sandbox should not be needed")


def ctx(kind: str = "number", executor=never, **kw) -> VerifyContext:
    return VerifyContext(model=ScriptedModel([]), settings=load_settings(), answer_kind=kind, executor=executor, **kw)


def pal_trace(code: str, answer: str | None, status: str = "solved") -> Trace:
    step = Step(index=0, kind="program", action="python", action_input=code, observation=answer or "retry")
    return Trace(task="How many?", agent="pal", steps=[step], final_answer=answer, status=status)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def humaneval() -> dict[str, dict]:
    path = Path(__file__).resolve().parents[3] / "data" / "humaneval" / "humaneval.jsonl"
    return {row["task_id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_pal_answered_traces_need_no_sandbox():
    v = ExecutionVerifier()
    assert v.score(pal_trace("def solution():\n    return 4", "4"), ctx()).value == 1.0
    wrong = v.score(pal_trace("def solution():\n    return 'four'", "four"), ctx())
    assert wrong.value == 0.5 and "not a number" in wrong.detail
    assert v.score(pal_trace("def solution():\n    return 'four'", "four"), ctx("text")).value == 1.0
    assert v.score(Trace(task="q", agent="pal", status="parse_error"), ctx()).value == 0.0
    assert v.score(Trace(task="q", agent="pal"), ctx()).value == 0.5  # partial, nothing run yet
    assert v.score(Trace(task="q", agent="react", final_answer="4", status="solved"), ctx()).value == 0.5


def test_pal_unanswered_traces_rerun_the_last_program_in_the_sandbox():
    rec = Recording()
    v = ExecutionVerifier()
    failed = v.score(pal_trace("def solution():\n    return 1 / 0", None, "max_steps"), ctx(executor=rec))
    assert failed.value == 0.0 and "ZeroDivisionError" in failed.detail
    empty = v.score(pal_trace("def solution():\n    x = 3", None, "max_steps"), ctx(executor=rec))
    assert empty.value == 0.25 and "nothing" in empty.detail
    assert rec.opened == rec.closed == 2 and all(p.endswith("solution()") for p in rec.programs)


def test_execution_needs_a_sandbox_factory():
    with pytest.raises(ConfigError, match="sandbox"):
        ExecutionVerifier().score(pal_trace("def solution():\n    pass", None, "max_steps"), ctx(executor=None))


def test_visible_examples_of_real_humaneval_prompts(humaneval):
    found = {tid: visible_examples(r["prompt"], r["entry_point"]) for tid, r in humaneval.items()}
    assert sum(bool(e) for e in found.values()) >= 100  # doctests and the inline forms
    first = found["HumanEval/0"]
    assert [(e.expression, e.expected) for e in first] == [
        ("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False"),
        ("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "True")]
    arrows = {e.expression: e.expected for e in found["HumanEval/72"]}  # ➞
    assert arrows["will_it_fly([3, 2, 3], 9)"] == "True"
    js = {e.expression: e.expected for e in found["HumanEval/76"]}  # => true
    assert js["is_simple_power(8, 2)"] == "True"
    prose = {e.expression: e.expected for e in found["HumanEval/97"]}  # should return 16.
    assert prose["multiply(148, 412)"] == "16"
    assert found["HumanEval/67"] == []  # "-> 19 - 5 - 6 = 8" is arithmetic prose, not an example
    assert found["HumanEval/80"] == []  # is_happy(a): ``a`` is no literal
    assert entry_point_of(humaneval["HumanEval/10"]["prompt"]) == "make_palindrome"  # a helper comes first


def test_no_example_ever_comes_from_the_hidden_tests(humaneval):
    for row in humaneval.values():
        for example in visible_examples(row["prompt"], row["entry_point"]):
            assert example.expression.split("(")[0] in row["prompt"]
            assert "candidate(" not in example.test() and "check(" not in example.test()


CODE_TASKS = ["HumanEval/0", "HumanEval/10", "HumanEval/72", "HumanEval/97", "HumanEval/128"]


@pytest.mark.parametrize("task_id", CODE_TASKS)
def test_canonical_solutions_pass_their_visible_examples(humaneval, task_id):
    row = humaneval[task_id]
    rec = Recording()
    trace = Trace(task=row["prompt"], agent="humaneval", final_answer=row["canonical_solution"], status="solved")
    score = ExecutionVerifier().score(trace, ctx("code", rec, entry_point=row["entry_point"]))
    assert score.value == 1.0, score.detail
    assert rec.opened == rec.closed == 1
    hidden = row["test"].strip()
    assert all(hidden not in p and "def check(candidate)" not in p for p in rec.programs)


def test_a_wrong_completion_scores_the_fraction_it_passes(humaneval):
    row = humaneval["HumanEval/0"]  # examples: False, then True
    rec = Recording()
    always_false = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
    trace = Trace(task=row["prompt"], agent="humaneval", final_answer=always_false, status="solved")
    score = ExecutionVerifier().score(trace, ctx("code", rec))  # entry point read from the prompt
    assert score.value == 0.5 and "1 of 2" in score.detail
    assert all(row["test"].strip() not in p for p in rec.programs) and rec.opened == rec.closed


def test_hostile_code_cannot_fake_a_pass(humaneval):
    row = humaneval["HumanEval/0"]
    rec = Recording()
    exits = "    import sys\n    sys.exit(0)\n"
    trace = Trace(task=row["prompt"], agent="humaneval", final_answer=exits, status="solved")
    assert ExecutionVerifier().score(trace, ctx("code", rec)).value == 0.0


def test_code_without_examples_scores_half():
    prompt = 'def f(x):\n    """Return x doubled."""\n'
    trace = Trace(task=prompt, agent="humaneval", final_answer="    return 2 * x\n", status="solved")
    score = ExecutionVerifier().score(trace, ctx("code"))
    assert score.value == 0.5 and "no examples" in score.detail


def test_candidate_program_takes_bodies_and_whole_functions():
    prompt = 'def f(x):\n    """>>> f(1)\n    2\n    """\n'
    body = candidate_program(prompt, "return x + 1", "f")
    assert body.startswith(prompt) and body.endswith("    return x + 1\n")
    whole = candidate_program(prompt, "```python\ndef f(x):\n    return x + 1\n```", "f")
    assert whole.rstrip().endswith("def f(x):\n    return x + 1")
