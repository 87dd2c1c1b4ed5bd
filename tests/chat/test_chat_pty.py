"""The real ``ponder chat`` process on a pseudo-terminal, with a scripted model."""

from __future__ import annotations

import json
from pathlib import Path


def _tasks(tmp_path: Path) -> list[dict]:
    path = tmp_path / "runs" / "trajectories.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_turns_threads_interrupt_restart_resume(terminal, write_script, tmp_path: Path) -> None:
    slow = "Thought: " + "slowly " * 60 + "\nFinal Answer: never"
    spec = write_script(
        tmp_path / "first.jsonl",
        "Thought: I add them.\nAction: calculator\nAction Input: 2+3",
        "Final Answer: 5",
        "Thought: I double the last result.\nAction: calculator\nAction Input: 5*2",
        "Final Answer: 10",
        {"text": slow, "delay": 0.2},
        "Final Answer: still here",
    )
    term = terminal("--model", spec)
    banner = term.wait("/help for commands")
    thread = banner.split("thread ")[1].split()[0]
    assert len(thread) == 6

    # turn 1: a tool call, shown step by step, then the answer
    term.wait("you>")
    term.line("What is 2+3?")
    shown = term.wait("solved · 2 steps")
    assert "Thought: I add them." in shown
    assert "Action: calculator Input: 2+3" in shown
    assert "Observation: 5" in shown
    assert "Answer" in shown and "│ 5" in shown

    # turn 2 refers to turn 1
    term.wait("you>")
    term.line("And doubled?")
    shown = term.wait("solved · 2 steps")
    assert "Action: calculator Input: 5*2" in shown and "Observation: 10" in shown

    # a typo is one line, not a traceback
    term.wait("you>")
    term.line("/frobnicate now")
    shown = term.wait("/help lists the commands")
    assert "error: unknown command /frobnicate" in shown and "Traceback" not in shown
    term.wait("you>")

    # Ctrl-C while the model is still writing: the turn is dropped, the prompt comes back
    term.line("Count slowly to a hundred")
    term.wait("slowly slowly slowly")  # tokens stream in as they are generated
    term.child.sendintr()
    shown = term.wait("keeps its earlier turns", timeout=30)
    assert "interrupted: that turn was dropped" in shown and "Traceback" not in shown
    assert "never" not in shown
    term.wait("you>")

    # the thread kept exactly the two finished turns
    term.line("/threads")
    listing = term.wait("What is 2+3?")
    assert f"* {thread}" in listing and "2 turns" in listing and "What is 2+3?" in listing

    # the chat still works after the interruption, on the same thread
    term.line("Are you still there?")
    shown = term.wait("solved · 1 steps")
    assert "still here" in shown
    term.wait("you>")
    term.child.sendeof()
    term.wait(f"ponder chat --thread {thread}")
    assert term.close() == 0

    # restart and resume: the earlier turns (not the interrupted one) are in the agent's context
    spec2 = write_script(tmp_path / "second.jsonl", "Final Answer: 20")
    term = terminal("--model", spec2, "--thread", thread)
    term.wait(f"thread {thread} (3 earlier turns)")
    term.wait("you>")
    term.line("Double that once more")
    term.wait("│ 20")
    term.wait("you>")
    term.line("/quit")
    term.wait("bye")
    assert term.close() == 0

    task = _tasks(tmp_path)[-1]["task"]
    assert "User: What is 2+3?\nAssistant: 5" in task
    assert "User: And doubled?\nAssistant: 10" in task
    assert "User: Are you still there?\nAssistant: still here" in task
    assert "Count slowly" not in task
    assert task.rstrip().endswith("Double that once more")


def test_unknown_thread_is_one_line_exit_2(terminal, write_script, tmp_path: Path) -> None:
    spec = write_script(tmp_path / "s.jsonl", "Final Answer: 1")
    term = terminal("--model", spec, "--thread", "nosuch")
    shown = term.wait("(/threads lists them)")
    assert "ponder: error: no chat thread 'nosuch'" in shown and "Traceback" not in shown
    assert term.close() == 2


def test_quiet_shows_only_answers(terminal, write_script, tmp_path: Path) -> None:
    spec = write_script(tmp_path / "s.jsonl", "Thought: add\nAction: calculator\nAction Input: 40+2",
                        "Final Answer: forty-two")
    term = terminal("--model", spec, "--quiet")
    term.wait("you>")
    term.line("What is 40+2?")
    shown = term.wait("forty-two")
    shown += term.wait("you>")
    assert "Thought" not in shown and "Observation" not in shown and "Answer" not in shown
    assert "ponder chat ·" not in term.text  # no banner either
    term.line("/quit")
    assert term.close() == 0
