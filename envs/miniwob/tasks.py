"""The MiniWoB++ task list of the ``miniwob`` suite (``tasks.json``, shipped as package data).

The file is ``{"seeds": [...], "tasks": [{"task", "tier", "description", "seeds"?}, ...]}``; a task's own
``seeds`` replace the file's. Every task must be a MiniWoB++ page shipped inside the ``miniwob`` package
(``miniwob/html/miniwob/<task>.html``); FlightWoB tasks (``flight.*``) are not supported.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ponder.core.datafiles import describe_validation, read_json_file
from ponder.core.errors import DataError

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
        DataError: for a missing, empty or malformed file (bad JSON: ``file:line``), or naming every bad
            task (a malformed or duplicate task, or one the installed ``miniwob`` package does not ship).
    """
    p = Path(path) if path is not None else TASKS_FILE
    if not p.is_file():
        raise DataError(f"no such MiniWoB task file: {p}")
    raw = read_json_file(p, what="MiniWoB task")
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), list):
        raise DataError(f'{p}: expected an object with a "tasks" list')
    seeds = raw.get("seeds", list(DEFAULT_SEEDS))
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise DataError(f'{p}: "seeds" must be a list of integers')
    pages = html_dir()
    out: list[MiniWoBTask] = []
    problems: list[str] = []
    for i, row in enumerate(raw["tasks"]):
        try:
            task = MiniWoBTask.model_validate(row)
        except ValidationError as exc:
            problems.append(f"task #{i}: {describe_validation(exc)} ({row!r})")
            continue
        if any(t.task == task.task for t in out):
            problems.append(f"task #{i}: {task.task!r} is listed twice")
        elif pages is not None and not (pages / f"{task.task}.html").is_file():
            problems.append(f"task #{i}: {task.task!r} is not a MiniWoB++ task of the installed miniwob package")
        else:
            out.append(task.model_copy(update={"seeds": task.seeds or list(seeds)}))
    if problems:
        raise DataError(f"{p}: {len(problems)} bad task(s): " + "; ".join(problems))
    if not out:
        raise DataError(f"{p}: the task list is empty")
    return out
