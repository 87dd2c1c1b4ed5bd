"""The chat's pieces in process: streaming, the conversation graph, threads, slash commands."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from ponder.chat.commands import dispatch
from ponder.chat.graph import contextual_task
from ponder.chat.render import ChatRenderer
from ponder.chat.session import ChatSession
from ponder.chat.streaming import StreamingModel
from ponder.chat.threads import ThreadStore
from ponder.core.errors import ConfigError, DataError
from ponder.core.settings import load_settings
from ponder.models.base import BaseBackend, Completion, GenerationParams, StopFilter
from ponder.models.scripted import ScriptedModel

Q = [{"role": "user", "content": "q"}]


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
    assert wrapped.model.calls  # the call reached the backend
    # the protocol's members pass through to the backend
    assert (wrapped.spec, wrapped.backend_name, wrapped.real) == ("scripted", "scripted", False)
    assert wrapped.capabilities is wrapped.model.capabilities
    assert wrapped.count_tokens(Q) == wrapped.model.count_tokens(Q)


# -- context and threads -------------------------------------------------------------------------------------

def test_contextual_task() -> None:
    assert contextual_task("What is 2+3?", []) == "What is 2+3?"
    turns = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(8)] + [{"question": "q8", "answer": None}]
    task = contextual_task("and then?", turns)
    assert "User: q0" not in task and "User: q3\nAssistant: a3" in task
    assert "User: q8\nAssistant: (no answer)" in task and task.endswith("and then?")


def session_for(tmp_path: Path, responses, **settings) -> tuple[ChatSession, io.StringIO]:
    out = io.StringIO()
    renderer = ChatRenderer(Console(file=out, width=120), verbose=False)
    cfg = load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", **settings)
    session = ChatSession.open(cfg, renderer, db_path=tmp_path / "threads.sqlite")
    session.model = ScriptedModel(responses)
    return session, out


def test_turns_persist_and_an_interrupted_turn_leaves_no_trace(tmp_path: Path) -> None:
    def reply(messages, params):
        last = messages[-1]["content"]
        if "boom" in last:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the model call
        if last.startswith("Observation:"):
            return "Final Answer: 5"
        return "Final Answer: hello" if "hi" in last else "Thought: add\nAction: calculator\nAction Input: 2+3"

    session, out = session_for(tmp_path, reply)
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


def test_streaming_to_a_terminal_shows_tokens(tmp_path: Path) -> None:
    session, _ = session_for(tmp_path, ["Final Answer: streamed words here"])
    out = io.StringIO()
    session.renderer = ChatRenderer(Console(file=out, width=100, force_terminal=True))
    session.ask("go")
    assert "streamed" in out.getvalue() and "\x1b[2K" in out.getvalue()  # the live area was drawn, then erased


# -- slash commands ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "message"), [
    ("/bogus", "unknown command /bogus; /help lists the commands"),
    ("/thread", "unknown command /thread (did you mean /threads?)"),
    ("/agent cot", "unknown agent 'cot'"),
    ("/samples 0", "/samples takes a whole number from 1 to 64"),
    ("/samples many", "/samples takes a whole number"),
    ("/model gpt5", "bad model spec"),
    ("/model scripted:/no/such.jsonl", "scripted model file not found"),
    ("/resume zzzzzz", "no chat thread 'zzzzzz'"),
    ("/resume", "/resume needs a thread id"),
    ("/resume ../etc", "bad thread id"),
    ("/save", "/save needs a file name"),
    ("/save /no/such/dir/x.md", "cannot write"),
    ("/tools calculator,frob", "unknown tool(s) frob"),
    ("/memory sometimes", "unknown memory mode 'sometimes'"),
    ("/reflect", "nothing to reflect on yet"),
])
def test_bad_commands_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    session, _ = session_for(tmp_path, ["Final Answer: 1"])
    with pytest.raises((ConfigError, DataError)) as info:
        dispatch(session, line)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_commands_change_the_session(tmp_path: Path) -> None:
    session, out = session_for(tmp_path, ["Final Answer: 12", "Final Answer: 13"])
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
    assert "/samples [N]" in text and "What is 3*4?" in text and "And 13?" in text
    assert dispatch(session, f"/save {tmp_path / 't.md'}")
    saved = (tmp_path / "t.md").read_text()
    assert f"# ponder chat {first}" in saved and "## 1. What is 3*4?" in saved and ": 12" in saved
    assert dispatch(session, "/quit") is False and dispatch(session, "/exit") is False


def test_samples_turn_is_a_self_consistency_vote(tmp_path: Path) -> None:
    answers = iter(["Final Answer: 7", "Final Answer: 7", "Final Answer: 8"])
    session, out = session_for(tmp_path, lambda messages, params: next(answers))
    dispatch(session, "/samples 3")
    turn = session.ask("Pick a number")
    assert turn["answer"] == "7" and turn["samples"] == 3 and turn["agreement"] == pytest.approx(2 / 3, abs=0.01)
    assert (tmp_path / "runs" / "self_consistency.jsonl").is_file()
    assert "3 samples" in out.getvalue()


def test_reflect_stores_a_lesson_and_memory_shows_what_was_retrieved(tmp_path: Path) -> None:
    from ponder.memory.embeddings import HashingEmbeddingFunction
    from ponder.memory.store import open_store

    session, out = session_for(tmp_path, [
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
