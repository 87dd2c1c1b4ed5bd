"""Slash commands of ``ponder chat``: bad input is one line, the run-spec commands are generated from ``RunSpec``
(usage from its choices, help from its descriptions, values checked by it), threads and transcripts."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from ponder.chat.commands import COMMANDS, SPEC_FIELDS, dispatch
from ponder.chat.session import MAX_SAMPLES, ChatSession
from ponder.core.errors import ConfigError, DataError
from ponder.graphs.strategies.spec import spec_fields

SessionFor = Callable[..., tuple[ChatSession, io.StringIO]]


@pytest.mark.parametrize(("line", "message"), [
    ("/bogus", "unknown command /bogus; /help lists the commands"),
    ("/thread", "unknown command /thread (did you mean /threads?)"),
    ("/agent cot", "/agent must be one of: react, pal (got 'cot')"),
    ("/samples 0", "/samples must be at least 1"),
    ("/samples many", "/samples: Input should be a valid integer"),
    (f"/samples {MAX_SAMPLES + 1}", f"/samples takes at most {MAX_SAMPLES} in a chat"),
    ("/vote loudest", "/vote must be one of: majority, weighted, judge (got 'loudest')"),
    ("/early-stop on", "/early-stop applies to self-consistency: add /samples N (N > 1)"),
    ("/budget lots", "invalid budget 'lots'"),
    ("/trials 0", "/trials must be at least 1"),
    ("/model gpt5", "bad model spec"),
    ("/model scripted:/no/such.jsonl", "scripted model file not found"),
    ("/resume zzzzzz", "no chat thread 'zzzzzz'"),
    ("/resume", "/resume needs a thread id"),
    ("/resume ../etc", "bad thread id"),
    ("/save", "/save needs a file name"),
    ("/save /no/such/dir/x.md", "cannot write"),
    ("/tools calculator,frob", "unknown tool(s) frob"),
    ("/memory sometimes", "/memory must be one of: none, reflexion, expel, both (got 'sometimes')"),
    ("/reflect", "nothing to reflect on yet"),
])
def test_bad_commands_are_one_line_errors(session_for: SessionFor, line: str, message: str) -> None:
    session, _ = session_for(["Final Answer: 1"])
    before = session.spec
    with pytest.raises((ConfigError, DataError)) as info:
        dispatch(session, line)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert session.spec == before  # a refused change changes nothing


def test_every_cli_field_of_the_spec_is_a_command_with_its_help() -> None:
    fields = [f for f in spec_fields() if f.cli]
    assert {f.flag[2:] for f in fields} == set(SPEC_FIELDS) <= set(COMMANDS)
    for field in fields:
        command = COMMANDS[field.flag[2:]]
        if field.name != "memory":  # /memory also shows what was retrieved (its own help)
            assert command.help == field.help
        if field.choices:
            assert "|".join(field.choices) in command.usage
    assert COMMANDS["samples"].usage == "[N]" and COMMANDS["early-stop"].usage == "[on|off]"


def test_spec_commands_show_and_set_the_run(session_for: SessionFor) -> None:
    session, out = session_for(["Final Answer: 1"])
    assert dispatch(session, "/samples 5") and dispatch(session, "/vote weighted")
    assert dispatch(session, "/early-stop on") and dispatch(session, "/stop-rule beta")
    assert dispatch(session, "/trials 2") and dispatch(session, "/compose samples_of_trials")
    spec = session.spec
    assert (spec.samples, spec.vote, spec.early_stop, spec.stop_rule, spec.trials, spec.compose) == (
        5, "weighted", True, "beta", 2, "samples_of_trials")
    assert session.samples == 5 and session.agent == "react"
    dispatch(session, "/vote")
    assert "vote: weighted" in out.getvalue().splitlines()[-1]
    dispatch(session, "/early-stop")
    assert out.getvalue().splitlines()[-1].strip() == "early-stop: on"


def test_commands_change_the_session(session_for: SessionFor, tmp_path: Path) -> None:
    session, out = session_for(["Final Answer: 12", "Final Answer: 13"])
    assert dispatch(session, "/agent pal") and session.agent == "pal"
    assert dispatch(session, "/agent react") and dispatch(session, "/samples 1")
    assert dispatch(session, "/tools calculator") and session.settings.tools == ["calculator"]
    assert dispatch(session, "/memory reflexion") and session.memory_mode == "reflexion"
    assert dispatch(session, "/memory off") and session.memory_mode == "none"
    assert dispatch(session, "/memory on") and session.memory_mode == "both"
    dispatch(session, "/memory off")
    first = session.thread_id
    session.ask("What is 3*4?")
    assert dispatch(session, "/new") and session.thread_id != first and session.turns() == []
    session.ask("And 13?")
    assert dispatch(session, f"/resume {first}") and session.thread_id == first
    assert dispatch(session, "/help") and dispatch(session, "/threads")
    text = out.getvalue()
    assert "/samples [N]" in text and "/vote [majority|weighted|judge]" in text
    assert "What is 3*4?" in text and "And 13?" in text
    assert dispatch(session, f"/save {tmp_path / 't.md'}")
    saved = (tmp_path / "t.md").read_text()
    assert f"# ponder chat {first}" in saved and "## 1. What is 3*4?" in saved and ": 12" in saved
    assert dispatch(session, "/quit") is False and dispatch(session, "/exit") is False


def test_reflect_stores_a_lesson_and_memory_shows_what_was_retrieved(session_for: SessionFor) -> None:
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.store import open_store

    session, out = session_for([
        "Final Answer: 408",
        "Check multiplication results with the calculator before answering.",
        "Final Answer: 391",
    ])
    session.memory_store = open_store(session.settings, embedding_function=HashingEmbeddingFunction())
    session.ask("What is 17 * 24?")
    dispatch(session, "/reflect")
    [record] = session.memory_store.list("reflection")
    assert "Check multiplication results" in record.text and record.task == "What is 17 * 24?"
    assert record.task_family == "chat"
    dispatch(session, "/memory reflexion")
    session.ask("What is 17 * 23?")
    dispatch(session, "/memory")
    text = out.getvalue()
    assert "lesson: Check multiplication results" in text
    assert f"reflection {record.id} added" in text  # /reflect
    assert "last turn retrieved 1 memories" in text and f"  reflection {record.id} sim " in text  # /memory
    assert "Task: What is 17 * 24?" in session.model.calls[-1][-1]["content"]  # the lesson reached the prompt
