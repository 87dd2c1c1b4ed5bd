"""The chat's pieces in process: streaming, the conversation graph, threads, how a turn runs (its strategy).

``session_for`` is a fixture of ``conftest.py``; the slash commands are tested in ``test_chat_commands.py``."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from ponder.chat.commands import dispatch
from ponder.chat.graph import contextual_task
from ponder.chat.render import ChatRenderer
from ponder.chat.session import ChatSession
from ponder.chat.streaming import StreamingModel
from ponder.chat.threads import ThreadStore
from ponder.models.base import BaseBackend, Completion, GenerationParams, StopFilter
from ponder.models.scripted import ScriptedModel

Q = [{"role": "user", "content": "q"}]
SessionFor = Callable[..., tuple[ChatSession, io.StringIO]]


def drain(gen):
    pieces = []
    while True:
        try:
            pieces.append(next(gen))
        except StopIteration as done:
            return pieces, done.value


# -- streaming ---------------------------------------------------------------------------------------------

def test_stop_filter_holds_back_a_possible_stop_and_cuts_at_it() -> None:
    f = StopFilter(["\nObservation:"])
    assert f.feed("Thought: x\nObs") == "Thought: x"  # "\nObs" might start the stop sequence
    assert f.feed("erv") == ""
    assert f.feed("ation: 5") == "" and f.stopped
    g = StopFilter(["\nObservation:"])
    assert g.feed("a\nOb") == "a" and g.feed("ject") == "\nObject" and g.finish() == ""


def test_scripted_stream_matches_generate_and_honours_delay(tmp_path: Path) -> None:
    script = tmp_path / "s.jsonl"
    script.write_text('"Thought: hi\\nAction: calculator\\nAction Input: 1+1\\nObservation: no"\n'
                      '{"text": "one two three", "delay": 0.05}\n')
    model = ScriptedModel.from_jsonl(script)
    params = GenerationParams(stop=["\nObservation:"])
    pieces, completion = drain(model.stream(Q, params))
    assert len(pieces) > 3 and "".join(pieces) == completion.text
    assert completion.text == "Thought: hi\nAction: calculator\nAction Input: 1+1"
    start = time.perf_counter()
    pieces, completion = drain(model.stream(Q, params))
    assert pieces == ["one ", "two ", "three"] and time.perf_counter() - start >= 0.15


def test_default_stream_and_streaming_wrapper() -> None:
    class Plain(BaseBackend):
        real = False
        spec = "plain"

        def generate(self, messages, params):
            return [Completion(text="whole", completion_tokens=1)] * params.n

    pieces, completion = drain(Plain().stream(Q, GenerationParams()))
    assert pieces == ["whole"] and completion.text == "whole"
    seen: list[str] = []
    wrapped = StreamingModel(ScriptedModel(["Final Answer: 4 apples"]), seen.append)
    [completion] = wrapped.generate(Q, GenerationParams())
    assert "".join(seen) == completion.text == "Final Answer: 4 apples" and len(seen) == 4
    assert wrapped.backend.calls  # the call reached the backend
    # the protocol's members pass through to the backend
    assert (wrapped.spec, wrapped.backend_name, wrapped.real) == ("scripted", "scripted", False)
    assert wrapped.capabilities is wrapped.backend.capabilities
    assert wrapped.count_tokens(Q) == wrapped.backend.count_tokens(Q)


# -- context and threads -------------------------------------------------------------------------------------

def test_contextual_task() -> None:
    assert contextual_task("What is 2+3?", []) == "What is 2+3?"
    turns = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(8)] + [{"question": "q8", "answer": None}]
    task = contextual_task("and then?", turns)
    assert "User: q0" not in task and "User: q3\nAssistant: a3" in task
    assert "User: q8\nAssistant: (no answer)" in task and task.endswith("and then?")


def test_turns_persist_and_an_interrupted_turn_leaves_no_trace(session_for: SessionFor, tmp_path: Path) -> None:
    def reply(messages, params):
        last = messages[-1]["content"]
        if "boom" in last:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the model call
        if last.startswith("Observation:"):
            return "Final Answer: 5"
        return "Final Answer: hello" if "hi" in last else "Thought: add\nAction: calculator\nAction Input: 2+3"

    session, out = session_for(reply)
    assert session.ask("What is 2+3?")["answer"] == "5"
    with pytest.raises(KeyboardInterrupt):
        session.ask("boom")
    assert session.ask("say hi")["answer"] == "hello"
    assert [t["question"] for t in session.turns()] == ["What is 2+3?", "say hi"]
    assert session.turns()[0]["steps"][0] == {"kind": "action", "thought": "add", "action": "calculator",
                                              "input": "2+3", "observation": "5"}
    # the agent saw the earlier finished turn, not the interrupted one
    last_prompt = session.model.calls[-1][-1]["content"]
    assert "User: What is 2+3?\nAssistant: 5" in last_prompt and "boom" not in last_prompt
    thread = session.thread_id
    session.store.close()

    reopened = ThreadStore(tmp_path / "threads.sqlite")  # a new process, as far as SQLite is concerned
    [info] = reopened.list()
    assert (info.id, info.first_message, info.turns) == (thread, "What is 2+3?", 2) and info.created
    assert reopened.turns(thread)[1]["answer"] == "hello"
    rendered = out.getvalue()
    assert "Action: calculator Input: 2+3" in rendered and "Observation: 5" in rendered and "Answer" in rendered


def test_streaming_to_a_terminal_shows_tokens(session_for: SessionFor, tmp_path: Path) -> None:
    session, _ = session_for(["Final Answer: streamed words here"])
    out = io.StringIO()
    session.renderer = ChatRenderer(Console(file=out, width=100, force_terminal=True))
    session.ask("go")
    assert "streamed" in out.getvalue() and "\x1b[2K" in out.getvalue()  # the live area was drawn, then erased


def test_samples_turn_is_a_self_consistency_vote(session_for: SessionFor, tmp_path: Path) -> None:
    answers = iter(["Final Answer: 7", "Final Answer: 7", "Final Answer: 8"])
    session, out = session_for(lambda messages, params: next(answers))
    dispatch(session, "/samples 3")
    turn = session.ask("Pick a number")
    assert turn["answer"] == "7" and turn["samples"] == 3 and turn["agreement"] == pytest.approx(2 / 3, abs=0.01)
    assert (tmp_path / "runs" / "self_consistency.jsonl").is_file()
    assert "3 samples" in out.getvalue()


def test_a_turn_runs_the_composed_strategy(session_for: SessionFor, tmp_path: Path) -> None:
    """/samples with /trials: trials of a vote (a solved vote ends the trials: there is no label in a chat)."""
    session, out = session_for(["Final Answer: 7", "Final Answer: 7", "Final Answer: 8"])
    dispatch(session, "/samples 3")
    dispatch(session, "/trials 2")
    turn = session.ask("Pick a number")
    assert turn["answer"] == "7" and turn["samples"] == 3 and turn["trials"] == 1
    assert turn["agreement"] == pytest.approx(2 / 3, abs=0.01) and turn["self_consistency_id"]
    assert "trial 1: 7 (solved)" in out.getvalue() and len(session.model.calls) == 3
