"""The chat loop: read a line, run a slash command or a turn, never die of a typo.

Input comes from prompt_toolkit (arrow-key history kept in a file) when stdin and stdout are terminals,
else from plain ``input()`` (pipes, scripts). Ctrl-C at the prompt clears the line; Ctrl-C during a turn
abandons the turn (its thread keeps only finished turns) and returns to the prompt; Ctrl-D or ``/quit``
leaves.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ponder.chat.commands import dispatch
from ponder.chat.session import ChatSession
from ponder.core.errors import PonderError

log = logging.getLogger("ponder.chat")

PROMPT = "you> "

Reader = Callable[[str], str]


def make_reader(history_file: Path | None) -> Reader:
    """A line reader: prompt_toolkit with file history on a terminal, else ``input``."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return input
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history = InMemoryHistory()
    if history_file is not None:
        try:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        except OSError:
            pass
    prompt_session: PromptSession[str] = PromptSession(history=history)
    return lambda text: prompt_session.prompt(text)


def restore_ctrl_c() -> None:
    """Make Ctrl-C raise ``KeyboardInterrupt`` even when the chat was started with SIGINT ignored.

    Shells start background jobs (``cmd &``, ``nohup``) with SIGINT ignored, and Python keeps an ignored
    signal ignored; an interactive chat must still stop a turn on Ctrl-C.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def run_repl(session: ChatSession, read: Reader) -> int:
    """Run the chat until ``/quit`` or end of input; returns the exit code (0)."""
    restore_ctrl_c()
    out = session.renderer
    while True:
        try:
            line = read(PROMPT)
        except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh line
            continue
        except EOFError:  # Ctrl-D
            out.info("")
            break
        text = line.strip()
        if not text:
            continue
        try:
            if text.startswith("/"):
                if not dispatch(session, text):
                    break
            else:
                session.ask(text)
        except KeyboardInterrupt:
            out.abort()
            out.error(f"interrupted: that turn was dropped; thread {session.thread_id} keeps its earlier turns")
        except PonderError as exc:
            out.error(f"error: {exc}")
        except Exception as exc:  # a bug must not kill the chat: one line, details in the log
            log.debug("turn failed", exc_info=True)
            out.error(f"error: {type(exc).__name__}: {exc}")
    out.info(f"bye (thread {session.thread_id}; resume with: ponder chat --thread {session.thread_id})")
    return 0
