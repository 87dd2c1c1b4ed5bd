"""One supervised fine-tuning example (a chat conversation) and the JSONL files that hold them.

The format is the conversational one TRL's ``SFTTrainer`` and OpenAI fine-tuning read: one JSON object per line
with ``messages`` (``role`` / ``content``; ``system``, ``user``, ``assistant``). ponder adds ``metadata`` (where
the example came from: source, task id, episode, hint), which both readers ignore.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

Role = Literal["system", "user", "assistant"]


class ChatTurn(BaseModel):
    """One turn of a training conversation."""

    role: Role
    content: str


class SFTExample(BaseModel):
    """A training conversation: the agent's real prompt, then its turns; the loss covers the assistant turns only.

    ``metadata`` keys used by ponder: ``source`` (``gold-react``, ``gold-pal``, ``run``, ``eval``,
    ``self_consistency``, ``search``, ``star``), ``task_id``, ``task``, ``agent``, ``episode_id``,
    ``trajectory_id``, ``answer``, ``hint`` (True when the rationale was written with the answer as a hint).
    """

    messages: list[ChatTurn] = Field(min_length=2)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def assistant_turns(self) -> int:
        """How many assistant turns the conversation has."""
        return sum(1 for turn in self.messages if turn.role == "assistant")

    def prompt_turns(self) -> int:
        """How many leading turns are prompt (no loss): through the task's question turn.

        The question is the last user turn that starts with ``Question: `` and is followed by an assistant turn
        (what ponder's agents send after their system prompt and few-shot turns, whose demo replies must not be
        trained on); without one, everything before the first assistant turn.
        """
        roles = [turn.role for turn in self.messages]
        for index in range(len(self.messages) - 2, -1, -1):
            turn = self.messages[index]
            if turn.role == "user" and turn.content.startswith("Question: ") and "assistant" in roles[index + 1 :]:
                return index + 1
        return roles.index("assistant") if "assistant" in roles else len(roles)


def write_examples(path: Path, examples: Iterable[SFTExample]) -> int:
    """Write ``examples`` as JSONL (atomically: a temp file renamed into place); returns how many."""
    from ponder.core.io import write_atomic

    lines = [ex.model_dump_json(exclude_defaults=False) for ex in examples]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def iter_examples(path: Path) -> Iterator[SFTExample]:
    """The conversations of a chat-format JSONL file, in order.

    Raises:
        DataError: for a missing file; :class:`~ponder.core.errors.BadLinesError` listing every line that is not a
            conversation (``file:line: reason``).
    """
    from ponder.core.datafiles import read_jsonl_file

    return iter(read_jsonl_file(path, SFTExample.model_validate, what="training data").values())


def data_sha256(path: Path) -> str:
    """SHA-256 of a data file's bytes (recorded beside trained weights)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
