"""The progress display: tokens per second of this run and per-node counts of a distributed run."""

from __future__ import annotations

import io

from ponder.core.records import Usage
from ponder.envs.base import EpisodeResult
from ponder.envs.progress import Progress, Tally


def result(i: int, tokens: int, node: str | None = None, win: bool = True) -> EpisodeResult:
    meta = {"node": node} if node else {}
    return EpisodeResult(episode_id=f"e{i}", suite="s", task="t", success=win,
                         usage=Usage(prompt_tokens=tokens, completion_tokens=0), metadata=meta)


def test_tokens_per_second_counts_this_runs_episodes_only(monkeypatch):
    clock = iter([100.0, 110.0])
    monkeypatch.setattr("ponder.envs.progress.time.monotonic", lambda: next(clock))
    tally = Tally(4, [result(0, 1000)])  # resumed: its tokens are not this run's
    tally.add(result(1, 300))
    tally.add(result(2, 200))
    assert tally.tokens == 1500 and tally.tokens_per_second() == 50.0


def test_per_node_counts_in_plain_lines_and_the_rich_bar(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # Rich cuts the line at the console width (80 off a terminal)
    for rich in (False, True):
        stream = io.StringIO()
        with Progress(3, [], label="q", stream=stream, rich=rich) as display:
            display.update(result(0, 10, "aaaa1111"))
            display.update(result(1, 10, "bbbb2222", win=False))
            display.update(result(2, 10, "aaaa1111"))
        text = stream.getvalue()
        assert "nodes aaaa1111:2 bbbb2222:1" in text and "success 2/3 (66.7%)" in text, text
        assert "/s)" in text


def test_no_node_column_for_a_local_run():
    stream = io.StringIO()
    with Progress(1, [], stream=stream, rich=False) as display:
        display.update(result(0, 10))
    assert "nodes" not in stream.getvalue() and "tokens 10 (" in stream.getvalue()


def test_the_rich_bar_keeps_its_count_at_80_columns_with_two_nodes(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the stats on the bar's line squeezed out the bar, the count and the clock
    clock = iter(range(100, 10_000))
    monkeypatch.setattr("ponder.envs.progress.time.monotonic", lambda: float(next(clock)))
    stream = io.StringIO()
    with Progress(3, [], label="gsm8k", stream=stream, rich=True) as display:
        for i, node in enumerate(("aaaa1111", "bbbb2222", "aaaa1111")):
            display.update(result(i, 300_000, node))
    last = stream.getvalue().split("\x1b[2K")[-1]  # the final frame
    bar, stats = last.splitlines()[:2]
    assert "━" in bar and "3/3" in bar and "eta 0:00:00" in bar and "…" not in last, last
    assert stats.startswith("success 3/3 (100.0%) | tokens 900,000 (")
    assert stats.endswith("| nodes aaaa1111:2 bbbb2222:1")
