"""Trainer callbacks: one progress line per logging step, and a wall-clock budget that stops (and saves) a run."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Stop training once ``minutes`` of training time have passed; the trainer then saves a final checkpoint."""

    def __init__(self, minutes: float | None) -> None:
        self.seconds = None if minutes is None else minutes * 60.0
        self.start = time.monotonic()
        self.hit = False

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the clock when the first step starts (loading and tokenizing do not count)."""
        self.start = time.monotonic()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Ask the trainer to save and stop when the budget is spent."""
        if self.seconds is not None and time.monotonic() - self.start >= self.seconds:
            self.hit = True
            control.should_training_stop = True
            control.should_save = True


class ProgressLines(TrainerCallback):
    """Print ``step N/M  loss  tokens/s  elapsed`` at each logging step (to stderr; nothing when quiet)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.start = time.monotonic()
        self.last_loss: float | None = None
        self.start_tokens = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Start the clock and the token count (a resumed run's state already holds the earlier runs' tokens)."""
        self.start = time.monotonic()
        self.start_tokens = int(state.num_input_tokens_seen or 0)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        """One line per log event that carries a training loss.

        A run shorter than one logging interval logs no ``loss``; its final summary's mean ``train_loss`` then
        stands in as :attr:`last_loss`.
        """
        if logs and "loss" not in logs and "train_loss" in logs and self.last_loss is None:
            self.last_loss = float(logs["train_loss"])
        if not logs or "loss" not in logs:
            return
        self.last_loss = float(logs["loss"])
        elapsed = max(time.monotonic() - self.start, 1e-9)
        tokens = int(state.num_input_tokens_seen or 0) - self.start_tokens
        if not self.quiet:
            print(f"step {state.global_step}/{state.max_steps}  loss {self.last_loss:.4f}  "
                  f"{tokens / elapsed:,.0f} tokens/s  {elapsed / 60:.1f} min", file=self.stream, flush=True)
