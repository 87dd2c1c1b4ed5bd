"""Trusted grading of model-written code: the candidate cannot touch the tests or the verdict.

:func:`grade` keeps only the candidate's definitions (:func:`keep_definitions`) and runs a harness
program through any :class:`~ponder.tools.executor.CodeExecutor`. Inside the sandbox the harness's
trusted side makes itself non-dumpable and, per test, forks a candidate process that keeps only
stdout/stderr and two pipes and execs a fresh interpreter with the definitions. The tests run on the
trusted side with pristine builtins; the candidate's functions are proxies whose arguments and results
cross the pipes as plain values of exact built-in types (``_codec.py``). A ``SystemExit`` (or any
``BaseException`` that is not an ``Exception``), a non-plain result, a dead candidate, a signal to the
grader, a timeout or a missing end-of-tests acknowledgement fails the test; the verdict is the harness
program's value with a per-run random marker, parsed strictly on the host.

Used by the ``humaneval`` suite (:mod:`ponder.envs.code`) and by self-consistency's ``code`` vote keys.
"""

from ponder.tools.grading.grader import GradeReport, TestOutcome, build_program, grade, parse_verdict
from ponder.tools.grading.source import SourceError, keep_definitions

__all__ = ["GradeReport", "SourceError", "TestOutcome", "build_program", "grade", "keep_definitions",
           "parse_verdict"]
