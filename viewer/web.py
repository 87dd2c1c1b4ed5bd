"""What every page handler shares: rendering, the run a URL names, integer path parameters, record loading."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ponder.viewer.catalog import Catalog, RunEntry
from ponder.viewer.jsonl import JsonlFile, LineProblem
from ponder.viewer.rows import validation_reason


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """The page ``name`` rendered with ``context`` (plus the live poll interval)."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, {"poll_ms": request.app.state.poll_ms, **context},
                                      status_code=status_code)


def catalog(request: Request) -> Catalog:
    """The app's catalog of run folders."""
    return request.app.state.catalog


def run_entry(request: Request) -> RunEntry:
    """The run the URL's ``key`` names, refreshed (new lines read); 404 when there is none."""
    cat = catalog(request)
    key = request.path_params["key"]
    entry = cat.get(key)
    if entry is None:  # a folder made after the last discovery (e.g. a new eval): look again once
        cat.refresh()
        entry = cat.get(key)
    if entry is None:
        raise HTTPException(404, f"no run folder with key {key!r} under the folders this viewer serves")
    entry.refresh()
    return entry


#: The longest number a URL may carry (more digits is no line, page or node of any file).
MAX_DIGITS = 18


def parse_count(raw: str) -> int | None:
    """``raw`` as a non-negative integer when it is 1 to 18 ASCII digits, else ``None``."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS else None


def int_param(request: Request, name: str) -> int:
    """A path parameter that must be a non-negative integer; 404 otherwise."""
    raw = str(request.path_params.get(name, ""))
    number = parse_count(raw)
    if number is None:
        raise HTTPException(404, f"{name} must be a number, not {raw[:40]!r}")
    return number


class RecordProblem(Exception):
    """A line that is not a valid record: the page shows what is wrong instead of the record."""

    def __init__(self, file: JsonlFile, number: int, reason: str, excerpt: str) -> None:
        super().__init__(reason)
        self.file, self.number, self.reason, self.excerpt = file, number, reason, excerpt


def load_record(file: JsonlFile | None, number: int, model: type[BaseModel], what: str) -> Any:
    """Line ``number`` of ``file`` as a ``model``.

    Raises:
        HTTPException: 404 when the file or the line does not exist.
        RecordProblem: when the line is torn, not JSON or not a valid ``model``.
    """
    if file is None:
        raise HTTPException(404, f"this run has no {what} file")
    try:
        obj = file.read(number)
    except KeyError:
        raise HTTPException(404, f"{file.path.name} has no line {number}") from None
    except LineProblem as exc:
        raise RecordProblem(file, number, f"{exc.ref.state}: {exc.ref.error}", exc.excerpt) from None
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise RecordProblem(file, number, validation_reason(exc, f"{what} record"), file.raw(number, 4000)) from None
