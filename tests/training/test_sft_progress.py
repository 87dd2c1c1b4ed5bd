"""Trainer callbacks: progress lines count only this run's tokens (a resumed state holds the earlier ones), and a
run shorter than one logging interval still reports a loss."""

from __future__ import annotations

import io
from types import SimpleNamespace

from ponder.training.sft_progress import ProgressLines


def test_resumed_runs_count_only_their_own_tokens() -> None:
    stream = io.StringIO()
    progress = ProgressLines(stream=stream)
    state = SimpleNamespace(num_input_tokens_seen=1_000_000, global_step=10, max_steps=20)
    progress.on_train_begin(None, state, None)
    progress.start -= 10.0  # this run has trained for 10 s
    state.num_input_tokens_seen += 50
    progress.on_log(None, state, None, logs={"loss": 1.5})
    rate = float(stream.getvalue().split("  ")[2].split()[0].replace(",", ""))
    assert progress.start_tokens == 1_000_000 and progress.last_loss == 1.5
    assert 4 <= rate <= 5  # 50 tokens in ~10 s, not the resumed million


def test_a_run_shorter_than_a_logging_interval_keeps_its_mean_loss() -> None:
    progress = ProgressLines(stream=io.StringIO(), quiet=True)
    state = SimpleNamespace(num_input_tokens_seen=0, global_step=2, max_steps=2)
    progress.on_train_begin(None, state, None)
    progress.on_log(None, state, None, logs={"train_runtime": 3.0, "train_loss": 0.9})
    assert progress.last_loss == 0.9
    progress.on_log(None, state, None, logs={"loss": 0.7})
    progress.on_log(None, state, None, logs={"train_loss": 0.8})
    assert progress.last_loss == 0.7  # a logged loss wins over the mean
