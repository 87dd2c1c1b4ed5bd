"""A real HTTP server on 127.0.0.1 that answers like an OpenAI-compatible server, from a handler function.

No model runs behind it, so backends talking to it are built with ``real=False``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ponder.models.openai import OpenAIBackend

# (status, headers, json body) from (request body, 1-based request number)
Reply = tuple[int, dict[str, str], dict[str, Any]]
Handler = Callable[[dict[str, Any], int], Reply]


def chat_reply(*texts: str, finish: str = "stop", completion_tokens: int = 3, logprobs: Any = None) -> Reply:
    choices = [
        {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish,
         "logprobs": logprobs}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    usage = {"prompt_tokens": 11, "completion_tokens": completion_tokens,
             "total_tokens": 11 + completion_tokens}  # fmt: skip
    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "fake", "choices": choices,
            "usage": usage}  # fmt: skip
    return 200, {}, body


def sse_reply(*pieces: str) -> Reply:
    """A streamed answer (``text/event-stream``): one chunk per piece, then the usage chunk and ``[DONE]``."""
    return 200, {}, {"sse": list(pieces)}


def _sse_body(pieces: list[str]) -> bytes:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "fake"}
    out = [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": len(pieces),
                                                 "total_tokens": 11 + len(pieces)}})
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in out).encode() + b"data: [DONE]\n\n"


def error_reply(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return status, headers or {}, {"error": {"message": message, "type": "error", "code": status}}


class FakeServer:
    """A real HTTP server on 127.0.0.1 answering ``/v1/chat/completions`` from a handler function."""

    def __init__(self, handler: Handler, delay: float = 0.0, gets: dict[str, Any] | None = None,
                 port: int = 0) -> None:
        self.handler, self.delay, self.gets = handler, delay, gets or {}
        self.requests: list[dict[str, Any]] = []
        self.get_paths: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.requests.append(body)
                    count = len(outer.requests)
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    time.sleep(outer.delay)
                    status, headers, payload = outer.handler(body, count)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1
                sse = "sse" in payload
                data = _sse_body(payload["sse"]) if sse else json.dumps(payload).encode()
                kind = "text/event-stream" if sse else "application/json"
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": kind, **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

            def do_GET(self) -> None:  # noqa: N802 - the JSON of ``gets`` by path, else 404
                outer.get_paths.append(self.path)
                found = self.path in outer.gets
                data = json.dumps(outer.gets.get(self.path, {"detail": "Not Found"})).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def backend(self, **kwargs: Any) -> OpenAIBackend:
        kwargs = {"max_retries": 3, "timeout": 5.0, "real": False, "tool_calls": False, "json_schema": False,
                  **kwargs}
        return OpenAIBackend("fake", self.base_url, **kwargs)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fake_servers() -> Iterator[Callable[..., FakeServer]]:
    """The body of a ``fake`` fixture: ``start(handler, delay, gets)`` starts a server; all are closed at the end."""
    servers: list[FakeServer] = []

    def start(handler: Handler, delay: float = 0.0, gets: dict[str, Any] | None = None, port: int = 0) -> FakeServer:
        servers.append(FakeServer(handler, delay, gets, port))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


