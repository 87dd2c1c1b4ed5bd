"""Fixtures of the chat tests: a chat session on a scripted model, an isolated environment and a
pseudo-terminal driving the real ``ponder chat``."""

from __future__ import annotations

import io
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pexpect
import pytest
from rich.console import Console

from ponder.chat.render import ChatRenderer
from ponder.chat.session import ChatSession
from ponder.core.settings import load_settings
from ponder.models.scripted import ScriptedModel

PONDER = Path(sys.executable).parent / "ponder"
ANSI = re.compile(r"\x1b\[[0-9;?<=>]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][A-Za-z0-9]|\x1b[=>78]|\r")


@pytest.fixture
def session_for(tmp_path: Path) -> Callable[..., tuple[ChatSession, io.StringIO]]:
    """``session_for(responses, **settings)``: a chat session on a scripted model, and what it printed."""

    def make(responses: Any, **settings: Any) -> tuple[ChatSession, io.StringIO]:
        out = io.StringIO()
        renderer = ChatRenderer(Console(file=out, width=120), verbose=False)
        cfg = load_settings(out_dir=tmp_path / "runs", memory_path=tmp_path / "memory", **settings)
        session = ChatSession.open(cfg, renderer, db_path=tmp_path / "threads.sqlite")
        session.model = ScriptedModel(responses)
        return session, out

    return make


@pytest.fixture
def chat_env(offline_env: dict[str, str]) -> dict[str, str]:
    """Environment for a ``ponder chat`` subprocess: ``offline_env`` plus a fixed-size terminal."""
    return {**offline_env, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50"}


class Terminal:
    """A ``ponder chat`` process on a pseudo-terminal, with waits on its output with escape codes removed."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.child = pexpect.spawn(str(PONDER), ["chat", *args], env=env, cwd=str(cwd), encoding="utf-8",
                                   dimensions=(50, 160), timeout=60)
        self.raw = ""
        self.pos = 0

    @property
    def text(self) -> str:
        """Everything printed so far, without escape codes."""
        return ANSI.sub("", self.raw)

    def wait(self, needle: str, timeout: float = 60) -> str:
        """Wait until ``needle`` appears after the previous match; returns the text up to and including it."""
        deadline = time.monotonic() + timeout
        while True:
            clean = self.text
            found = clean.find(needle, self.pos)
            if found >= 0:
                chunk = clean[self.pos : found + len(needle)]
                self.pos = found + len(needle)
                return chunk
            if time.monotonic() > deadline or not self.child.isalive() and not self._pump(0.1):
                raise AssertionError(f"{needle!r} did not appear; output since the last match:\n{clean[self.pos:]}")
            self._pump(0.2)

    def _pump(self, timeout: float) -> bool:
        try:
            self.raw += self.child.read_nonblocking(65536, timeout=timeout)
            return True
        except pexpect.TIMEOUT:
            return False
        except pexpect.EOF:
            return False

    def line(self, text: str) -> None:
        """Type a line."""
        self.child.send(text + "\r")

    def close(self) -> int | None:
        """Wait for the process to end (killing it after 30 s); returns its exit status."""
        deadline = time.monotonic() + 30
        while self.child.isalive() and time.monotonic() < deadline:
            self._pump(0.2)
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def terminal(chat_env: dict[str, str], tmp_path: Path):
    """Start ``ponder chat ARGS`` on a pseudo-terminal; every terminal started is closed at the end."""
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal(list(args), chat_env, tmp_path)
        started.append(term)
        return term

    yield start
    for term in started:
        if term.child.isalive():
            term.child.terminate(force=True)
