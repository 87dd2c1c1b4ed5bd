"""Chat threads on disk: LangGraph's SQLite checkpointer, short thread ids and the thread listing."""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.core.errors import ConfigError, DataError

#: Thread ids: short, lower case, no look-alike characters (0/o, 1/l/i).
ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
ID_LENGTH = 6
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/ponder/chat/threads.sqlite`` (default ``~/.local/share/ponder/chat/threads.sqlite``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ponder" / "chat" / "threads.sqlite"


@dataclass
class ThreadInfo:
    """One line of ``/threads``."""

    id: str
    first_message: str
    created: str
    updated: str
    turns: int


class ThreadStore:
    """The chat threads in one SQLite file, through ``langgraph-checkpoint-sqlite``'s ``SqliteSaver``.

    Args:
        path: The database file (created with its directory when missing).

    Raises:
        DataError: when the file cannot be opened as a database.
    """

    def __init__(self, path: Path | str) -> None:
        from langgraph.checkpoint.sqlite import SqliteSaver

        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), check_same_thread=False)
            self.saver = SqliteSaver(self.conn)
            self.saver.setup()
        except (OSError, sqlite3.Error) as exc:
            raise DataError(f"cannot open the chat database {self.path}: {exc}") from None

    def close(self) -> None:
        """Close the database."""
        self.conn.close()

    def new_id(self) -> str:
        """A fresh short thread id not used in this database."""
        while True:
            tid = "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
            if not self.exists(tid):
                return tid

    def exists(self, thread_id: str) -> bool:
        """Whether the thread has any checkpoint."""
        row = self.conn.execute("SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (thread_id,)).fetchone()
        return row is not None

    def values(self, thread_id: str) -> dict[str, Any]:
        """The thread's latest state (``{}`` for an unknown thread)."""
        found = self.saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        return dict(found.checkpoint.get("channel_values") or {}) if found else {}

    def turns(self, thread_id: str) -> list[dict[str, Any]]:
        """The thread's finished turns, oldest first."""
        return list(self.values(thread_id).get("turns") or [])

    def list(self, limit: int = 20) -> list[ThreadInfo]:
        """Threads with at least one finished turn, most recently active first."""
        rows = self.conn.execute(
            "SELECT thread_id, MAX(checkpoint_id) AS last FROM checkpoints WHERE checkpoint_ns = '' "
            "GROUP BY thread_id ORDER BY last DESC").fetchall()
        out: list[ThreadInfo] = []
        for thread_id, _ in rows:
            turns = self.turns(thread_id)
            if not turns:
                continue
            out.append(ThreadInfo(id=thread_id, first_message=str(turns[0].get("question", "")),
                                  created=str(turns[0].get("at", "")), updated=str(turns[-1].get("at", "")),
                                  turns=len(turns)))
            if len(out) >= limit:
                break
        return out


def check_thread_id(thread_id: str) -> str:
    """Return ``thread_id`` stripped, or raise :class:`ConfigError` for one that cannot be a thread id."""
    text = thread_id.strip()
    if not ID_PATTERN.match(text):
        raise ConfigError(f"bad thread id {thread_id!r}: use letters, digits, '-' and '_' (see /threads)")
    return text
