"""Real token streaming of the local backends: the streamed pieces add up to what ``generate`` returns."""

from __future__ import annotations

import pytest

from ponder.config import load_settings
from ponder.models.base import GenerationParams
from ponder.models.spec import load_model

MESSAGES = [{"role": "user", "content": "Count from one to five in words."}]


@pytest.mark.integration
@pytest.mark.parametrize("spec", ["llamacpp", "transformers"])
def test_stream_matches_generate(spec: str) -> None:
    if spec == "llamacpp":
        pytest.importorskip("llama_cpp")
    model = load_model(spec, load_settings(llamacpp_threads=1))
    params = GenerationParams(max_tokens=24, stop=["five", "Five"], seed=0)
    [expected] = model.generate(MESSAGES, params)
    stream = model.stream(MESSAGES, params)
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            completion = done.value
            break
    assert len(pieces) > 1  # token by token, not the whole text at once
    assert "".join(pieces) == completion.text == expected.text
    assert completion.completion_tokens == expected.completion_tokens
    assert completion.finish_reason == expected.finish_reason


@pytest.mark.integration
def test_closing_a_stream_early_releases_the_model() -> None:
    model = load_model("llamacpp" if _has_llama() else "transformers", load_settings(llamacpp_threads=1))
    params = GenerationParams(max_tokens=64)
    stream = model.stream(MESSAGES, params)
    next(stream)
    stream.close()  # what Ctrl-C does to the chat's stream
    [again] = model.generate(MESSAGES, GenerationParams(max_tokens=8))  # would deadlock if the lock were held
    assert again.completion_tokens > 0


def _has_llama() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def test_openai_stream_against_a_fake_sse_server() -> None:
    """``OpenAIBackend.stream`` reads a real HTTP event stream (a test-owned server that runs no model)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ponder.models.openai import OpenAIBackend

    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
            for piece in ["Thought: add", "\nAction: calc", "ulator\nObs", "ervation: 5"]:
                chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            usage = {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}}
            self.wfile.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAIBackend("m", f"http://127.0.0.1:{server.server_port}/v1", real=False, max_retries=0)
        gen = backend.stream(MESSAGES, GenerationParams(stop=["\nObservation:"]))
        pieces = []
        while True:
            try:
                pieces.append(next(gen))
            except StopIteration as done:
                completion = done.value
                break
    finally:
        server.shutdown()
    assert seen[0]["stream"] is True and seen[0]["stop"] == ["\nObservation:"]
    assert len(pieces) > 1 and "".join(pieces) == completion.text == "Thought: add\nAction: calculator"
    assert completion.finish_reason == "stop" and completion.prompt_tokens == 11
