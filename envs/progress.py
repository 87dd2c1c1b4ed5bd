"""Progress of an evaluation run: a Rich bar or plain lines when not a TTY.

Both show episodes done, the live success rate, tokens (and tokens per second of this run's episodes), the
ETA and, for a distributed run (records with ``metadata["node"]``), how many episodes each node finished.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from rich.progress import Progress as RichProgress
from rich.text import Text

from ponder.core.textsafe import terminal_safe

if TYPE_CHECKING:
    from ponder.envs.base import EpisodeResult


class Tally:
    """Running counts shown by the progress displays."""

    def __init__(self, total: int, done: list[EpisodeResult]) -> None:
        self.total = total
        self.done = len(done)
        self.wins = sum(1 for r in done if r.success)
        self.tokens = sum(r.usage.total_tokens for r in done)
        self.resumed = self.done
        self.resumed_tokens = self.tokens
        self.nodes: Counter[str] = Counter()
        self.started = time.monotonic()

    def add(self, result: EpisodeResult) -> None:
        """Count one finished episode (and its node, when a distributed run tagged it)."""
        self.done += 1
        self.wins += int(result.success)
        self.tokens += result.usage.total_tokens
        node = result.metadata.get("node")
        if node:
            self.nodes[str(node)] += 1

    def tokens_per_second(self) -> float:
        """Tokens of this run's episodes (resumed ones excluded) per second since the run started."""
        elapsed = time.monotonic() - self.started
        return (self.tokens - self.resumed_tokens) / elapsed if elapsed > 0 else 0.0

    @property
    def rate(self) -> float:
        """Success rate so far."""
        return self.wins / self.done if self.done else 0.0

    def eta(self) -> float | None:
        """Seconds left at this run's pace (resumed episodes excluded), ``None`` before the first episode."""
        new = self.done - self.resumed
        if new <= 0:
            return None
        return (time.monotonic() - self.started) / new * (self.total - self.done)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """The display: call :meth:`update` with each finished episode; use as a context manager.

    Args:
        total: Episodes in the run (including those already finished when resuming).
        done: Results already in ``results.jsonl`` (resume).
        label: Shown before the bar (e.g. the suite name).
        stream: Where to draw (default: stderr, so stdout keeps only the summary).
        rich: Force the Rich bar (``True``) or plain lines (``False``); default: Rich on a TTY only.
        quiet: Show nothing.
    """

    def __init__(self, total: int, done: list[EpisodeResult], label: str = "eval", *, stream: TextIO | None = None,
                 rich: bool | None = None, quiet: bool = False) -> None:
        self.tally = Tally(total, done)
        self.label = label
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.rich = (self.stream.isatty() if rich is None else rich) and not quiet
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        if self.rich:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

            self._bar = _Bar(self, TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("eta {task.fields[eta]}"),
                             console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.tally.total, completed=self.tally.done,
                                            eta=_clock(None))
        elif not self.quiet and self.tally.resumed:
            self._line(f"resuming: {self.tally.resumed}/{self.tally.total} episodes already finished")
        return self

    def stats(self) -> str:
        """Success so far, tokens (per second) and, for a distributed run, episodes per node."""
        t = self.tally
        text = f"success {t.wins}/{t.done} ({100 * t.rate:.1f}%) | tokens {t.tokens:,} ({t.tokens_per_second():,.0f}/s)"
        if t.nodes:
            text += " | nodes " + " ".join(f"{node}:{n}" for node, n in sorted(t.nodes.items()))
        return text

    def _line(self, text: str) -> None:
        print(terminal_safe(text), file=self.stream, flush=True)  # episode ids and failures come from data

    def update(self, result: EpisodeResult) -> None:
        """Count and show one finished episode."""
        self.tally.add(result)
        if self.quiet:
            return
        eta = _clock(self.tally.eta())
        if self._bar is not None:
            self._bar.update(self._task, completed=self.tally.done, eta=eta)  # type: ignore[arg-type]
            return
        width = len(str(self.tally.total))
        verdict = "ok  " if result.success else f"FAIL {result.failure or '?'}"
        self._line(f"[{self.tally.done:>{width}}/{self.tally.total}] {self.label} {result.episode_id} {verdict} "
                   f"| {self.stats()} | eta {eta}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


class _Bar(RichProgress):
    """The Rich bar, with the stats (:meth:`Progress.stats`) on a line of their own: both fit 80 columns."""

    def __init__(self, owner: Progress, *columns: Any, **kwargs: Any) -> None:
        self._owner = owner  # before Rich's own set-up, which may render
        super().__init__(*columns, **kwargs)

    def get_renderables(self) -> Iterator[Any]:
        yield self.make_tasks_table(self.tasks)
        yield Text(self._owner.stats(), overflow="fold")
