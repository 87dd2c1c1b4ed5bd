"""Trajectory records and the JSONL writer/loader of ponder's own records (user files: ``datafiles.py``).

Every record is appended with flush + fsync, so a crash mid-run keeps every finished record.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from ponder.core.errors import DataError

T = TypeVar("T", bound=BaseModel)

Status = Literal["solved", "max_steps", "parse_error", "error"]


class Usage(BaseModel):
    """Compute spent by a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    wall_seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class Step(BaseModel):
    """One agent step: a model call and, when it asked for one, a tool call.

    ``kind`` is ``action`` (a tool was called), ``final`` (the model answered), ``parse_error``
    (malformed output answered with a format reminder) or ``program`` (PAL: a program was run).
    """

    index: int
    kind: Literal["action", "final", "parse_error", "program"]
    raw: str = Field("", description="The model's text for this step, as generated.")
    thought: str = ""
    action: str | None = None
    action_input: str | None = None
    observation: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprob: float | None = Field(None, description="Sum of token log-probabilities, when the backend gave them.")
    model_seconds: float = 0.0
    tool_seconds: float = 0.0

    def to_messages(self) -> list[dict[str, str]]:
        """The chat messages this step contributes to the conversation."""
        msgs = [{"role": "assistant", "content": self.raw}]
        if self.observation is not None:
            msgs.append({"role": "user", "content": f"Observation: {self.observation}"})
        return msgs


class Trajectory(BaseModel):
    """A whole agent run."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    task: str
    agent: str
    model: str
    backend: str = ""
    steps: list[Step] = Field(default_factory=list)
    final_answer: str | None = None
    status: Status = "error"
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    metadata: dict[str, object] = Field(default_factory=dict)


def append_jsonl(path: str | Path, record: BaseModel) -> Path:
    """Append one record as a JSON line, flushed and fsynced before returning."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = record.model_dump_json() + "\n"
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
    return p


def read_jsonl(path: str | Path, model: type[T] = Trajectory) -> Iterator[T]:  # type: ignore[assignment]
    """Yield validated records from one of ponder's own append-only JSONL files (trajectories, results).

    A truncated last line (a crash mid-write) is skipped; any other bad line raises. The tolerance is
    for ponder's own records only: files a user hands in (``memory import``, ``--data``, corpora, scripts)
    are read strictly by :func:`ponder.core.datafiles.read_jsonl_file`, which reports every bad line.

    Raises:
        DataError: naming the file and line of a malformed record.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such records file: {p}")
    lines = p.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield model.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as exc:
            is_last = lineno == len(lines) or all(not rest.strip() for rest in lines[lineno:])
            if is_last and isinstance(exc, json.JSONDecodeError):
                return
            raise DataError(f"{p}:{lineno}: invalid record: {exc}") from None
