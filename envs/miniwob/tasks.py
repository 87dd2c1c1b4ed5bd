"""The MiniWoB++ task list of the ``miniwob`` suite (``tasks.json``, shipped as package data).

The file is ``{"seeds": [...], "tasks": [{"task", "tier", "description", "seeds"?}, ...]}``; a task's own
``seeds`` replace the file's. Every task must be a MiniWoB++ page shipped inside the ``miniwob`` package
(``miniwob/html/miniwob/<task>.html``); FlightWoB tasks (``flight.*``) are not supported.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ponder.errors import DataError

TASKS_FILE = Path(__file__).with_name("tasks.json")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


class MiniWoBTask(BaseModel):
    """One MiniWoB++ task of the suite."""

    task: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    tier: str = ""
    description: str = ""
    seeds: list[int] = Field(default_factory=list)


def html_dir() -> Path | None:
    """The MiniWoB++ task pages shipped in the ``miniwob`` package, or ``None`` when it is not installed."""
    try:
        import miniwob
    except ImportError:
        return None
    return Path(miniwob.__file__).parent / "html" / "miniwob"


def available_tasks() -> list[str]:
    """Every task page the installed ``miniwob`` package ships (empty without the package)."""
    pages = html_dir()
    return sorted(p.stem for p in pages.glob("*.html")) if pages else []


def load_tasks(path: Path | None = None) -> list[MiniWoBTask]:
    """The tasks of ``path`` (default: the shipped ``tasks.json``), each with its seeds filled in.

    Raises:
        DataError: for a missing or malformed file, a duplicate task, or a task the installed ``miniwob``
            package does not ship.
    """
    p = Path(path) if path is not None else TASKS_FILE
    if not p.is_file():
        raise DataError(f"no such MiniWoB task file: {p}")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
        raise DataError(f'{p}: expected an object with a "tasks" list')
    seeds = raw.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise DataError(f'{p}: "seeds" must be a list of integers')
    pages = html_dir()
    out: list[MiniWoBTask] = []
    seen: set[str] = set()
    for i, row in enumerate(raw["tasks"]):
        try:
            task = MiniWoBTask.model_validate(row)
        except ValidationError as exc:
            raise DataError(f"{p}: task #{i}: {exc.errors()[0]['msg']} ({row!r})") from None
        if task.task in seen:
            raise DataError(f"{p}: task {task.task!r} is listed twice")
        if pages is not None and not (pages / f"{task.task}.html").is_file():
            raise DataError(f"{p}: {task.task!r} is not a MiniWoB++ task of the installed miniwob package")
        seen.add(task.task)
        out.append(task.model_copy(update={"seeds": task.seeds or list(seeds)}))
    if not out:
        raise DataError(f"{p}: the task list is empty")
    return out
