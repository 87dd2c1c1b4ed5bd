"""``/strategy`` and the search options in ``ponder chat``: generated from RunSpec, checked by it, and a turn runs the
chosen strategy (the real strategies on a scripted model; ``session_for`` is a fixture of ``conftest.py``)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from rich.console import Console

from ponder.chat.commands import COMMANDS, dispatch
from ponder.chat.render import ChatRenderer
from ponder.chat.session import ChatSession
from ponder.core.errors import ConfigError
from ponder.graphs.search.tree import SEARCH_FILE

SessionFor = Callable[..., tuple[ChatSession, io.StringIO]]


def reply(messages, params) -> str:
    """One calculator call, then the answer 5."""
    if "Observation: 5" in messages[-1]["content"]:
        return "Thought: done\nFinal Answer: 5"
    return "Thought: add\nAction: calculator\nAction Input: 2+3"


def test_the_search_commands_exist_with_their_choices():
    assert COMMANDS["strategy"].usage == "[single|sc|best_of_n|beam|lats|refine|adaptive]"
    for name in ("verifier", "prm", "beam-width", "expansions", "exploration", "iterations", "rounds", "accept"):
        assert name in COMMANDS


@pytest.mark.parametrize(("lines", "message"), [
    (["/strategy bogus"], "/strategy must be one of: single, sc, best_of_n, beam, lats, refine, adaptive"),
    (["/strategy lats", "/verifier nope"], "/verifier: unknown verifier 'nope'"),
    (["/beam-width 5"], "/beam-width applies to /strategy beam"),
    (["/strategy beam", "/beam-width 0"], "/beam-width must be at least 1"),
    (["/strategy lats", "/rounds 2"], "/rounds applies to /strategy refine"),
    (["/strategy best_of_n", "/vote judge"], "/vote judge applies to /strategy sc"),
])
def test_bad_values_name_the_slash_command(session_for: SessionFor, lines, message):
    session, _ = session_for([])
    *setup, bad = lines
    for line in setup:
        dispatch(session, line)
    before = session.spec
    with pytest.raises(ConfigError) as info:
        dispatch(session, bad)
    assert message in str(info.value) and "\n" not in str(info.value) and session.spec == before


def test_switching_strategy_shows_it_and_drops_what_does_not_apply(session_for: SessionFor):
    session, out = session_for([])
    dispatch(session, "/strategy beam")
    dispatch(session, "/beam-width 5")
    dispatch(session, "/strategy lats")
    assert session.spec.strategy_name == "lats" and session.spec.beam_width == 3
    dispatch(session, "/strategy sc")
    assert session.spec.samples == 5 and "strategy: sc" in out.getvalue()
    dispatch(session, "/strategy")
    assert out.getvalue().rstrip().endswith("strategy: sc")


def test_a_turn_runs_lats_and_records_the_tree(session_for: SessionFor, tmp_path):
    session, out = session_for(reply)
    session.renderer = ChatRenderer(Console(file=out, width=120, force_terminal=True))  # would stream a single run
    dispatch(session, "/strategy lats")
    dispatch(session, "/verifier self,env")
    dispatch(session, "/budget 20000t")
    turn = session.ask("What is 2+3?")
    assert (turn["answer"], turn["status"], turn["strategy"]) == ("5", "solved", "lats")
    assert 0.0 <= turn["score"] <= 1.0 and turn["tokens"] > 0 and turn["search_tree_id"]
    assert turn["search_tree_id"] in (tmp_path / "runs" / SEARCH_FILE).read_text()
    shown = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue())
    assert "· lats (" in shown and "trajectories, score 0." in shown
    assert "\x1b[2K" not in out.getvalue()  # nothing streamed: no live area drawn and erased (a single run has one)
    assert session.turns()[-1]["strategy"] == "lats"


@pytest.mark.parametrize("strategy", ["best_of_n", "refine", "beam", "adaptive"])
def test_a_turn_runs_the_chosen_strategy(session_for: SessionFor, strategy):
    session, out = session_for(reply)
    dispatch(session, f"/strategy {strategy}")
    turn = session.ask("What is 2+3?")
    assert (turn["answer"], turn["strategy"]) == ("5", strategy) and turn["trajectories"] >= 1
    assert f"· {strategy} (" in out.getvalue()
