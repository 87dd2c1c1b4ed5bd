"""The ``execution`` verifier: the program runs, and does what the task shows.

- **PAL** (``agent == "pal"``): the last program ran without error and returned a value of the expected kind
  (a number for answer kind ``number``; anything for other kinds): 1.0. It ran but returned the wrong kind:
  0.5; it returned nothing: 0.25; it failed (an exception, a kill) or no program ran: 0. A trace with an answer
  needs no sandbox (the PAL agent answers only from a program that ran); a trace without one has its last
  program run again in a fresh sandbox to tell a failure from an empty result.
- **Code** (answer kind ``code``, HumanEval-like: the task is a function prompt with a docstring): only the
  **visible** examples of the docstring (:mod:`ponder.graphs.verifiers.examples`) become tests; they run
  against the candidate through the trusted grader (:func:`ponder.tools.grading.grade`) in a fresh sandbox
  session: the candidate's definitions in their own process, the tests on the trusted side. The score is the
  fraction of examples passed; a prompt without examples scores 0.5. A dataset's hidden tests are never
  seen here: the verifier has only the task text and the answer.

Every sandbox session comes from ``VerifyContext.executor`` and is closed after its run.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from ponder.agents.parsing import answer_from_value
from ponder.core.answers import is_numeric
from ponder.core.errors import ConfigError
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.graphs.verifiers.examples import SAME_SOURCE, entry_point_of, example_tests
from ponder.tools.executor import CodeExecutor, ExecResult
from ponder.tools.grading import GradeReport, SourceError, grade, keep_definitions

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)

#: Scores of a PAL program that ran but returned the wrong kind of value, or nothing.
WRONG_KIND, NOTHING = 0.5, 0.25


def _executor(ctx: VerifyContext) -> CodeExecutor:
    if ctx.executor is None:
        raise ConfigError("the execution verifier needs a sandbox (VerifyContext.executor)")
    return ctx.executor()


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def candidate_program(prompt: str, answer: str, entry_point: str) -> str:
    """The program to grade: the prompt (its imports and helpers) and the answer's code.

    A complete function (``def <entry_point>(``) redefines the prompt's stub; anything else is taken as the
    stub's body (indented when it is not), the way HumanEval completions are.
    """
    blocks = _FENCE.findall(answer)
    code = (blocks[-1] if blocks else answer).strip("\n").rstrip()
    defines = re.compile(rf"^[ \t]*def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    if defines.search(code):
        whole = f"{prompt.rstrip()}\n\n\n{textwrap.dedent(code).strip()}\n"
        return whole if _parses(whole) else textwrap.dedent(code).strip() + "\n"
    lines = code.split("\n")
    if not any(line.startswith((" ", "\t")) for line in lines if line.strip()):
        code = textwrap.indent(code, "    ")
    return prompt + code.rstrip() + "\n"


def _grade_examples(ctx: VerifyContext, program: str, tests: list[str], setup: str,
                    entry_point: str) -> GradeReport:
    """One grading run in a fresh session; after a kill (one example hung) each example gets its own run."""
    executor = _executor(ctx)
    try:
        report = grade(executor, program, tests, setup=setup, exports=[entry_point])
    finally:
        executor.close()
    if report.kill_reason is None or len(tests) == 1:
        return report
    outcomes = []
    for test in tests:
        executor = _executor(ctx)
        try:
            outcomes.extend(grade(executor, program, [test], setup=setup, exports=[entry_point]).outcomes)
        finally:
            executor.close()
    return GradeReport(tuple(outcomes), report.calls, report.result, None)


def _definitions(prompt: str) -> str:
    """The prompt's imports and helper definitions for the trusted setup (no top-level statements)."""
    try:
        return keep_definitions(prompt) if prompt.strip() else ""
    except SourceError:
        return ""


def _run_program(ctx: VerifyContext, code: str) -> ExecResult:
    executor = _executor(ctx)
    try:
        return executor.run(f"{code}\n\nsolution()")
    finally:
        executor.close()


@dataclass
class ExecutionVerifier:
    """Runs what the trace wrote: PAL programs, or code against the task's visible examples."""

    name: str = "execution"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        """Score PAL traces by their last program's run, code answers by the visible examples they pass."""
        if ctx.answer_kind == "code":
            return self._code(trace, ctx)
        if trace.agent == "pal":
            return self._pal(trace, ctx)
        return Score(value=0.5, detail=f"nothing to execute for a {trace.agent} trace of a "
                                       f"{ctx.answer_kind} task")

    def _pal(self, trace: Trace, ctx: VerifyContext) -> Score:
        programs = [s for s in trace.steps if s.kind == "program" and s.action_input]
        if not programs:
            if trace.partial:
                return Score(value=0.5, detail="no program has run yet")
            return Score(value=0.0, detail="no program was run")
        answer = trace.final_answer if trace.status == "solved" else None
        if answer is None:
            result = _run_program(ctx, programs[-1].action_input or "")
            if not result.ok:
                return Score(value=0.0, detail=f"the last program failed: {result.summary(300)}")
            answer = answer_from_value(result.value, result.stdout)
        if answer is None or not answer.strip():
            return Score(value=NOTHING, detail="the last program ran but solution() returned nothing")
        if ctx.answer_kind == "number" and not is_numeric(answer.strip()):
            return Score(value=WRONG_KIND, detail=f"the program ran but returned {answer[:80]!r}, not a number")
        return Score(value=1.0, detail=f"the program ran and returned {answer[:80]!r}")

    def _code(self, trace: Trace, ctx: VerifyContext) -> Score:
        entry_point = ctx.entry_point or entry_point_of(trace.task)
        if entry_point is None:
            return Score(value=0.5, detail="no function to test: the task defines none")
        tests = example_tests(trace.task, entry_point)
        if not tests:
            return Score(value=0.5, detail=f"the task shows no examples of {entry_point}() to run")
        if not (trace.final_answer or "").strip():
            return Score(value=0.5 if trace.partial else 0.0, detail="no code to run")
        prompt = trace.task if _parses(trace.task) else ""
        program = candidate_program(prompt, trace.final_answer or "", entry_point)
        setup = f"{_definitions(prompt)}\n{SAME_SOURCE}"
        report = _grade_examples(ctx, program, tests, setup, entry_point)
        passed = sum(o.passed for o in report.outcomes)
        detail = f"{passed} of {len(tests)} visible examples passed"
        if passed < len(tests):
            detail += f"; first failure: {report.summary(300)}"
        return Score(value=passed / len(tests), detail=detail)
