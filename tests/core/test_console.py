"""The step printer strips control characters and escapes markup in untrusted text."""

import io
import re

from rich.console import Console

from ponder.core.console import StepPrinter
from ponder.core.records import Step, Trajectory

EVIL = "\x1b]52;c;cm0gLXJmIH4K\x07\x1b[1A\x1b[2K\x9b2J[bold red]markup[/] fake\rreal"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def render(fn) -> str:
    buf = io.StringIO()
    fn(Console(file=buf, width=300, highlight=False))
    return buf.getvalue()


def test_steps_and_final_answer_are_inert():
    step = Step(index=0, kind="program", raw=EVIL, thought=EVIL, action="python", action_input=EVIL, observation=EVIL)
    bad = Step(index=1, kind="parse_error", raw=EVIL, observation=EVIL)
    traj = Trajectory(task="q", agent="pal", model="m", steps=[step, bad], final_answer=EVIL, status="error",
                      error=EVIL)

    def show(console: Console) -> None:
        printer = StepPrinter(console, verbose=True)
        printer.step(step)
        printer.step(bad)
        printer.final(traj)

    out = render(show)
    assert not _CONTROL.search(out), repr(out)
    assert "Final Answer" in out and "]52;c;cm0gLXJmIH4K" in out
