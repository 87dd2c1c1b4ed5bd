"""Rich output of the chat: live model tokens, each finished step, the answer, one-line messages."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from ponder.core.console import StepPrinter, safe
from ponder.core.records import Step
from ponder.core.textsafe import terminal_safe

_STATUS_STYLE = {"solved": "green", "max_steps": "yellow", "parse_error": "yellow", "error": "red"}
#: Lines of streamed text kept visible while the model writes.
LIVE_LINES = 12
#: Seconds between two repaints of the streamed text.
REFRESH_EVERY = 0.05


class ChatRenderer:
    """Shows a turn as it happens.

    While the model writes, its tokens stream into a transient live area (terminals only); when a step
    finishes, the live area is replaced by the step, printed distinctly (thought, tool call with its
    arguments, observation); the turn ends with the answer. ``quiet`` shows only answers.

    Args:
        console: Where to print.
        quiet: Only print answers (and one-line messages).
        verbose: Add token counts and timings to each step.
    """

    def __init__(self, console: Console, *, quiet: bool = False, verbose: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.steps = StepPrinter(console, verbose=verbose)
        self._live: Live | None = None
        self._buffer = ""
        self._painted = 0.0

    @property
    def streams(self) -> bool:
        """Whether tokens are shown as they arrive (not quiet, and a terminal)."""
        return not self.quiet and self.console.is_terminal

    def token(self, piece: str) -> None:
        """Show one streamed piece of model text (control characters removed)."""
        if not self.streams:
            return
        self._buffer += terminal_safe(piece)
        if self._live is None:
            self._live = Live(console=self.console, transient=True, auto_refresh=False)
            self._live.start()
            self._painted = 0.0
        now = time.monotonic()
        if now - self._painted >= REFRESH_EVERY:
            self._paint()
            self._painted = now

    def _paint(self) -> None:
        if self._live is None:
            return
        tail = "\n".join(self._buffer.splitlines()[-LIVE_LINES:])
        self._live.update(Text.assemble(("… ", "bold cyan"), (tail, "dim")), refresh=True)

    def end_stream(self) -> None:
        """Remove the live area (the streamed text is about to be shown as a step)."""
        if self._live is not None:
            try:
                self._live.stop()
            finally:
                self._live = None
        self._buffer = ""

    def step(self, step: Step) -> None:
        """Print a finished step (nothing when quiet)."""
        self.end_stream()
        if not self.quiet:
            self.steps.step(step)

    def answer(self, turn: dict[str, Any]) -> None:
        """Print the turn's answer: a panel with a status line, or the bare answer when quiet."""
        self.end_stream()
        answer = turn.get("answer")
        if self.quiet:
            self.console.print(safe(answer if answer is not None else f"(no answer: {turn.get('status')})"))
            return
        style = _STATUS_STYLE.get(str(turn.get("status")), "white")
        shown = safe(answer) if answer is not None else "(no answer)"
        self.console.print(Panel(shown, title="Answer", border_style=style, expand=False))
        extra = f" · {turn['samples']} samples" if turn.get("samples", 1) > 1 else ""
        if turn.get("strategy"):
            score = f", score {turn['score']:.2f}" if turn.get("score") is not None else ""
            extra += f" · {turn['strategy']} ({turn.get('trajectories', 0)} trajectories{score}, " \
                     f"{turn.get('tokens', 0)} tokens)"
        self.console.print(f"[dim]{safe(str(turn.get('status')))} · {len(turn.get('steps') or [])} steps · "
                           f"{safe(str(turn.get('agent')))}{extra}[/]")

    def abort(self) -> None:
        """The turn was interrupted: drop the live area."""
        self.end_stream()

    def info(self, message: str) -> None:
        """A one-line message (it may quote model text: control characters are removed)."""
        self.console.print(terminal_safe(message), markup=False, highlight=False, soft_wrap=True)

    def error(self, message: str) -> None:
        """A one-line error message (control characters removed)."""
        self.console.print(Text(terminal_safe(message), style="red"), soft_wrap=True)
