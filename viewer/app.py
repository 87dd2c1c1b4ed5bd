"""The viewer's ASGI app: routes, server-rendered templates, security headers, error pages.

Every page is rendered on the server by Jinja2 with autoescaping on, so record text (observations written by
a model or a sandbox) is always text, never markup; a Content-Security-Policy that allows only the viewer's own
script and stylesheet backs that up, and the Host header must name the loopback address (a web page elsewhere
cannot reach the viewer through DNS rebinding). A missing run, line or record is a 404 page; a malformed
record is a page that says what is wrong with it; an unexpected error is a 500 page, never a blank one.
"""

from __future__ import annotations

import logging
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.viewer import pages_records, pages_runs
from ponder.viewer.catalog import Catalog
from ponder.viewer.format import FILTERS, GLOBALS, printable
from ponder.viewer.web import RecordProblem

HERE = Path(__file__).resolve().parent
#: What a page may load: its own script, stylesheet and inline SVG; nothing else (no inline script, no frames).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
#: The headers every response carries (the error pages too).
HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
           "x-frame-options": "DENY", "cache-control": "no-store"}
log = logging.getLogger(__name__)


class SecurityHeaders:
    """ASGI middleware: the CSP and the other hardening headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode("latin-1") not in HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def templates_env() -> Jinja2Templates:
    """The Jinja2 templates, autoescaped (every ``{{ }}`` is HTML-escaped), undefined names an error."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, finalize=printable)
    for name, fn in FILTERS.items():
        env.filters[name] = fn
    env.globals.update(GLOBALS)
    return Jinja2Templates(env=env)


def create_app(roots: list[Path], *, poll_seconds: float = 2.0) -> Starlette:
    """The viewer over the run folders under ``roots``.

    Raises:
        DataError: for a root that does not exist.
    """
    catalog = Catalog([Path(r) for r in roots])
    catalog.refresh()
    templates = templates_env()

    async def not_found(request: Request, exc: Exception) -> Response:
        """An HTTP error (404: no such run, line or record) as a page."""
        detail = exc.detail if isinstance(exc, HTTPException) else "not found"
        code = exc.status_code if isinstance(exc, HTTPException) else 404
        return render_error(request, code, str(detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        """An unexpected failure as a page (the traceback goes to the log)."""
        log.exception("ponder view: %s failed", request.url.path)
        return render_error(request, 500, f"the viewer failed on this page: {type(exc).__name__}: {exc}")

    async def record_problem(request: Request, exc: Exception) -> Response:
        """A line that is not a valid record: what is wrong with it and its text (HTTP 422)."""
        assert isinstance(exc, RecordProblem)
        context = {"file": exc.file.path.name, "number": exc.number, "reason": exc.reason, "excerpt": exc.excerpt,
                   "key": request.path_params.get("key", "")}
        return templates.TemplateResponse(request, "problem.html", context, status_code=422)

    def render_error(request: Request, code: int, message: str) -> Response:
        # Starlette answers an unhandled error outside the middleware: the headers are set here too.
        try:
            return templates.TemplateResponse(request, "error.html", {"code": code, "message": message},
                                              status_code=code, headers=HEADERS)
        except Exception:  # noqa: BLE001 - the last resort must not fail
            from markupsafe import escape

            return HTMLResponse(f"<!DOCTYPE html><title>{code}</title><p>{escape(printable(message))}</p>",
                                status_code=code, headers=HEADERS)

    routes = [*pages_runs.routes(), *pages_records.routes(),
              Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static")]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders),  # outermost: the Host refusal too
                                               Middleware(TrustedHostMiddleware, allowed_hosts=ALLOWED_HOSTS)],
                    exception_handlers={HTTPException: not_found, RecordProblem: record_problem,
                                        Exception: server_error})
    app.state.catalog = catalog
    app.state.templates = templates
    app.state.poll_ms = int(poll_seconds * 1000)
    return app

