"""The step printer strips control characters and escapes markup in untrusted text."""

from rich.console import Console
from testkit import CONTROL, EVIL, render

from ponder.core.console import StepPrinter
from ponder.core.records import Step, Trajectory


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
    assert not CONTROL.search(out), repr(out)
    assert "Final Answer" in out and "]52;c;cm0gLXJmIH4K" in out
