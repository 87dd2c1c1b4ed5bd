"""The ``humaneval`` suite: the model completes a function, the tests run in the sandbox; pass@1.

The model is asked once (``agents/prompts/humaneval_system.txt`` / ``humaneval_task.txt``) for the
complete function in a code block; a reply that holds only the body is accepted too. Grading is
trusted (:mod:`ponder.tools.grading`, in a fresh sandbox session, ``exec_timeout`` seconds): only the
definitions of ``prompt + completion`` are kept and loaded in a candidate process; the dataset's
``test`` code and ``check(entry_point)`` run on the harness's trusted side, calling the candidate's
``entry_point`` through a proxy that passes plain values only. The episode passes when ``check``
returns and the candidate acknowledged the end of the tests; an exit, a non-plain result or a signal
to the grader fails it. Harness policy ``canonical`` submits the dataset's canonical solution, which
checks the data, the sandbox and the runner, not a model.

``--strategy best_of_n --samples N`` (:mod:`ponder.envs.code_best_of_n`) samples N completions, scores them by
the docstring's visible examples (``--verifier``, default ``execution``) and grades only the best-scored one
with the hidden tests. Other strategies, ``--trials`` and ``--memory`` are refused.
"""

from __future__ import annotations

import re
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ponder.core.errors import ConfigError
from ponder.core.io import append_jsonl
from ponder.core.records import Step, Trajectory, Usage
from ponder.envs.base import Episode, EpisodeResult, EvalContext, FailureKind
from ponder.envs.qa import read_rows
from ponder.tools.grading import GradeReport, grade

if TYPE_CHECKING:
    from ponder.core.settings import Settings
    from ponder.envs.context import EvalOptions
    from ponder.models.base import ModelBackend
    from ponder.tools.executor import CodeExecutor

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


class HumanEvalRow(BaseModel):
    """One HumanEval problem (the original fields)."""

    model_config = {"extra": "allow"}

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str | None = None


def completion_from_reply(reply: str, entry_point: str) -> str | None:
    """The completion to append to the prompt, from a model reply (``None`` when it holds no code).

    A complete function (``def <entry_point>(``) is returned dedented after a newline, so it redefines
    the prompt's stub; anything else is taken as the body and indented when it is not.
    """
    blocks = [m.group("code").strip("\n") for m in _FENCE.finditer(reply or "")]
    blocks = [b for b in blocks if b.strip()]
    defines = re.compile(rf"^[ \t]*def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else (reply or "").strip("\n"))
    if not code.strip():
        return None
    if defines.search(code):
        return "\n" + textwrap.dedent(code).strip("\n") + "\n"
    lines = code.split("\n")
    if not any(ln.startswith((" ", "\t")) for ln in lines if ln.strip()):
        code = textwrap.indent(code, "    ")
    return code.rstrip() + "\n"


def grade_completion(executor: CodeExecutor, prompt: str, completion: str, test: str,
                     entry_point: str) -> GradeReport:
    """Grade ``prompt + completion`` against the dataset's ``test`` in ``executor`` (trusted grading).

    The candidate is the definitions of ``prompt + completion``; the trusted side runs ``prompt`` (its
    helper functions, which some tests use), ``test`` and then ``check(entry_point)``, with only
    ``entry_point`` taken from the candidate.
    """
    return grade(executor, prompt + completion, [f"check({entry_point})"], setup=f"{prompt}\n{test}\n",
                 exports=[entry_point])


def run_tests(settings: Settings, prompt: str, completion: str, test: str, entry_point: str) -> GradeReport:
    """:func:`grade_completion` in a fresh sandbox session (``exec_timeout`` seconds), closed afterwards."""
    from ponder.tools.sandbox import open_sandbox

    session = open_sandbox(settings)
    try:
        return grade_completion(session, prompt, completion, test, entry_point)
    finally:
        session.close()


@dataclass
class HumanEvalSuite:
    """HumanEval: function completion scored by its unit tests (pass@1).

    The model gets at least 512 new tokens for its reply (``max_tokens`` when larger): whole functions
    rarely fit the agents' default of 256.
    """

    name: str = "humaneval"
    data_file: str = "humaneval/humaneval.jsonl"
    policies: tuple[str, ...] = ("canonical",)
    needs_process: bool = False

    def episodes(self, settings: Settings, data: Path | None = None, limit: int | None = None) -> list[Episode]:
        """Problems of ``data`` (default: the shipped file) in file order.

        Raises:
            DataError: for a missing file or a malformed row (with its line number).
        """
        path = Path(data) if data is not None else Path(settings.data_dir) / self.data_file
        out = []
        for lineno, row in read_rows(path, HumanEvalRow, limit):
            assert isinstance(row, HumanEvalRow)
            out.append(Episode(id=row.task_id, suite=self.name, task=row.prompt, metadata={
                "entry_point": row.entry_point, "test": row.test, "canonical_solution": row.canonical_solution,
                "source": f"{path.name}:{lineno}"}))
        return out

    def check_options(self, options: EvalOptions) -> None:
        """pass@1 (``--strategy single``) or best-of-N on the visible examples; trials and memory are not offered.

        Raises:
            ConfigError: one line naming the refused option and what humaneval supports.
        """
        check_humaneval_options(options)

    def run_episode(self, episode: Episode, ctx: EvalContext) -> EpisodeResult:
        """Get a completion (model or canonical), run the tests in the sandbox, record pass/fail.

        ``--strategy best_of_n`` goes to :func:`ponder.envs.code_best_of_n.run_best_of_n`.
        """
        if ctx.policy == "agent" and ctx.spec.strategy_name == "best_of_n":
            from ponder.envs.code_best_of_n import run_best_of_n

            return run_best_of_n(self.name, episode, ctx)
        meta = episode.metadata
        entry_point, test = meta["entry_point"], meta["test"]
        start = time.perf_counter()
        usage = Usage()
        traj: Trajectory | None = None
        if ctx.policy == "canonical":
            completion = meta.get("canonical_solution")
            if completion is None:
                raise ConfigError(f"{meta.get('source')}: no canonical_solution for --policy canonical")
        else:
            reply, usage = self._ask(episode.task, ctx)
            completion = completion_from_reply(reply, entry_point)
            model = ctx.model
            assert model is not None  # _ask has refused to run without one
            traj = Trajectory(task=episode.task, agent="humaneval", model=model.spec, backend=model.backend_name,
                              steps=[Step(index=0, kind="program", raw=reply, prompt_tokens=usage.prompt_tokens,
                                          completion_tokens=usage.completion_tokens,
                                          model_seconds=usage.wall_seconds)],
                              final_answer=completion, status="solved" if completion else "parse_error",
                              metadata={"suite": self.name, "episode_id": episode.id})
        report = None if completion is None else run_tests(ctx.settings, episode.task, completion, test, entry_point)
        result = None if report is None else report.result
        passed = report is not None and report.passed
        failure: FailureKind = "" if passed else ("no_answer" if report is None else "tests_failed")
        error = None if report is None or passed else report.summary(500)
        usage.wall_seconds = round(time.perf_counter() - start, 4)
        if traj is not None:
            traj.steps[0].observation = "passed" if passed else (error or "no code in the reply")
            traj.steps[0].tool_seconds = result.duration if result is not None else 0.0
            traj.usage = usage.model_copy(update={"tool_calls": int(report is not None)})
            append_jsonl(Path(ctx.out_dir) / "trajectories.jsonl", traj)
        return EpisodeResult(
            episode_id=episode.id, suite=self.name, task=episode.task, policy=ctx.policy,
            policy_kind="agent" if ctx.policy == "agent" else "harness", success=passed, score=float(passed),
            metrics={"pass@1": float(passed)}, prediction=completion, status="solved" if passed else "failed",
            failure=failure, error=error, usage=usage.model_copy(update={"tool_calls": int(report is not None)}),
            trajectory_ids=[traj.id] if traj is not None else [],
            metadata={"source": meta.get("source"), "kill_reason": report.kill_reason if report else None})

    def _ask(self, prompt: str, ctx: EvalContext) -> tuple[str, Usage]:
        if ctx.model is None:
            raise ConfigError("humaneval --policy agent needs a model")
        return ask_model(ctx.model, ctx.settings, prompt)


def ask_model(model: ModelBackend, settings: Settings, prompt: str) -> tuple[str, Usage]:
    """One reply of ``model`` to the HumanEval ``prompt`` with ``settings``' sampling (>= 512 new tokens)."""
    from ponder.core.prompts import render
    from ponder.models.base import GenerationParams

    params = GenerationParams(temperature=settings.temperature, top_p=settings.top_p,
                              max_tokens=max(settings.max_tokens, 512), seed=settings.seed)
    messages = [{"role": "system", "content": render("humaneval_system")},
                {"role": "user", "content": render("humaneval_task", prompt=prompt.rstrip("\n"))}]
    start = time.perf_counter()
    completion = model.generate(messages, params)[0]  # type: ignore[arg-type]
    return completion.text, Usage(prompt_tokens=completion.prompt_tokens,
                                  completion_tokens=completion.completion_tokens, model_calls=1,
                                  wall_seconds=round(time.perf_counter() - start, 4))


#: What ``ponder eval humaneval`` runs besides pass@1 (named in the refusal of anything else).
SUPPORTED = ("--strategy single (pass@1) or --strategy best_of_n --samples N "
             "[--verifier execution|execution,self]")


def check_humaneval_options(options: EvalOptions) -> None:
    """Refuse what humaneval cannot honour, in one line naming the option and :data:`SUPPORTED`.

    Raises:
        ConfigError: for another strategy (``--samples N`` alone is ``sc``), ``--trials`` > 1, ``--memory``,
            ``--vote weighted`` or an ``env`` verifier (there is no environment).
    """
    from ponder.graphs.strategies.spec import parse_verifiers

    name = options.strategy_name
    refused = None
    if name not in ("single", "best_of_n"):
        refused = f"--strategy {name}" + (" (--samples N without --strategy best_of_n)" if
                                          options.strategy is None else "")
    elif options.trials > 1:
        refused = "--trials"
    elif options.memory not in (None, "none"):
        refused = "--memory"
    elif options.vote != "majority":
        refused = f"--vote {options.vote}"
    elif options.verifier and "env" in dict(parse_verifiers(options.verifier)):
        refused = "--verifier env"
    if refused is not None:
        raise ConfigError(f"humaneval measures pass@1: {refused} is not supported; use {SUPPORTED}")


def humaneval_suite() -> HumanEvalSuite:
    """HumanEval (130 problems shipped), pass@1 in the sandbox."""
    return HumanEvalSuite()
