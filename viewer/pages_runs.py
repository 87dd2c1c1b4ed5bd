"""Pages over whole runs.

The run list, a run's summary and episode table (and its live rows), two runs side by side, and the raw text
of a line that is not a record.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ponder.viewer.compare import compare_runs
from ponder.viewer.episodes import SORT_KEYS, EpisodeQuery, matches, query_rows
from ponder.viewer.web import catalog, int_param, parse_count, render, run_entry

#: The files a raw line may be shown from (the URL names one of them).
RAW_FILES = {"trajectories": "trajectories", "results": "results", "self_consistency": "votes", "search": "searches"}
#: The most rows one live poll returns (the rest come with the next poll).
LIVE_BATCH = 200


def index(request: Request) -> Response:
    """Every run folder with its summary, and the form that compares two of them."""
    cat = catalog(request)
    cat.refresh()
    runs = cat.runs()
    return render(request, "index.html", {"runs": runs, "summaries": {r.key: r.summary() for r in runs},
                                          "roots": cat.roots})


def run_page(request: Request) -> Response:
    """A run's summary and its episodes: filtered, sorted and paged by the query string."""
    entry = run_entry(request)
    query = EpisodeQuery.from_params(request.query_params)
    page = query_rows(entry.rows, query)
    # a torn last row keeps its line number once completed: poll from the line before it
    last = next((r.line for r in reversed(entry.rows) if r.status != "torn"), 0)
    return render(request, "run.html", {"run": entry, "summary": entry.summary(), "page": page, "query": query,
                                        "sort_keys": SORT_KEYS, "last_line": last,
                                        "live": entry.live and page.page == page.pages})


def live_rows(request: Request) -> Response:
    """The episode rows after line ``after`` that pass the page's filters (a fragment for the live page)."""
    entry = run_entry(request)
    after = parse_count(request.query_params.get("after", "0"))
    if after is None:
        raise HTTPException(400, "after must be a line number")
    query = EpisodeQuery.from_params(request.query_params)
    new = [r for r in entry.rows if r.line > after]
    batch = new[:LIVE_BATCH]
    last = after  # the script asks for the rows after this next time: never past a torn line, which may complete
    for row in batch:
        if row.status == "torn":
            break
        last = row.line
    shown = [r for r in batch if matches(r, query)]
    response = render(request, "rows.html", {"run": entry, "rows": shown})
    response.headers["X-Last-Line"] = str(last)
    response.headers["X-Total"] = str(query_rows(entry.rows, query).total)
    response.headers["X-Count"] = str(entry.summary().episodes)
    response.headers["X-Live"] = "1" if entry.live else "0"
    return response


def compare_page(request: Request) -> Response:
    """Two runs on the same episodes: which episodes changed outcome."""
    cat = catalog(request)
    cat.refresh()
    keys = (request.query_params.get("a", ""), request.query_params.get("b", ""))
    runs = [cat.get(k) for k in keys]
    if runs[0] is None or runs[1] is None:
        missing = ", ".join(repr(k) for k, r in zip(keys, runs, strict=True) if r is None)
        raise HTTPException(404, f"compare needs two run keys (?a=KEY&b=KEY); not found: {missing}")
    for run in runs:
        run.refresh()
    pairs, counts = compare_runs(runs[0], runs[1])
    change = request.query_params.get("change", "")
    shown = [p for p in pairs if not change or p.change == change]
    return render(request, "compare.html", {"a": runs[0], "b": runs[1], "pairs": shown, "counts": counts,
                                            "change": change, "total": len(pairs)})


def raw_line(request: Request) -> Response:
    """The text of one line of a run file (what a malformed or torn line holds), escaped."""
    entry = run_entry(request)
    name = request.path_params["file"]
    attr = RAW_FILES.get(name)
    file = getattr(entry, attr) if attr else None
    if file is None:
        raise HTTPException(404, f"this run has no {name} file")
    number = int_param(request, "n")
    try:
        ref = file.ref(number)
    except KeyError:
        raise HTTPException(404, f"{file.path.name} has no line {number}") from None
    return render(request, "line.html", {"run": entry, "file": file, "ref": ref, "text": file.raw(number)})


def routes() -> list[Route]:
    """The routes of this module."""
    return [Route("/", index), Route("/run/{key}", run_page), Route("/run/{key}/rows", live_rows),
            Route("/compare", compare_page), Route("/run/{key}/line/{file}/{n}", raw_line)]
