"""Tests of the OpenAI-compatible backend.

Unit tests talk to a real, tiny HTTP server written here with ``http.server`` (no model behind it), so
the backend is built with ``real=False`` to pass the ``PONDER_FORBID_REAL_MODEL`` guard. Integration
tests talk to a real llama.cpp server (``llama_server`` fixture in ``conftest.py``).
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from testkit import drain_stream

from ponder.core.errors import ModelError, RealModelCallError
from ponder.core.settings import load_settings
from ponder.models.base import GenerationParams, Message
from ponder.models.openai import OpenAIBackend
from ponder.models.spec import parse_spec
from ponder.tests.models.fake_openai_server import FakeServer, Handler, Reply, chat_reply, error_reply, fake_servers


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    yield from fake_servers()


USER: list[Message] = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The SDK's retry waits, recorded instead of slept (the ``time`` of the SDK's client module only)."""
    waits: list[float] = []
    monkeypatch.setattr(openai._base_client, "time", SimpleNamespace(sleep=waits.append, time=time.time))
    return waits


def meeting(parties: int, handler: Handler, after: int = 0) -> Handler:
    """``handler`` behind a barrier: request ``i > after`` is answered only once ``parties`` requests wait.

    Requests that are not in flight together break the barrier (after 4 s, below the client's 5 s
    timeout) and get HTTP 500, so a backend that sends them one after the other fails the test.
    """
    barrier = threading.Barrier(parties)

    def answer(body: dict[str, Any], i: int) -> Reply:
        if i > after:
            try:
                barrier.wait(timeout=4)
            except threading.BrokenBarrierError:
                return error_reply(500, f"request {i} was not in flight together with {parties - 1} other(s)")
        return handler(body, i)

    return answer


# -- unit tests (real local HTTP server, no model) ----------------------------------------------------


def test_retries_500_then_succeeds(fake, sleeps):
    server = fake(lambda body, i: error_reply(500, "boom") if i < 3 else chat_reply("hello"))
    [c] = server.backend().generate(USER, GenerationParams())
    assert c.text == "hello" and c.finish_reason == "stop"
    assert c.prompt_tokens == 11 and c.completion_tokens == 3
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and sleeps[0] < sleeps[1] <= 1.0  # the SDK's exponential backoff between attempts


def test_retries_are_the_sdks_own(fake):
    """The retrying is the ``openai`` client's: ``max_retries`` is handed to it, and its requests say so."""
    server = fake(lambda body, i: error_reply(502, "bad gateway") if i < 3 else chat_reply("hi"))
    backend = server.backend(max_retries=5)
    assert backend._client.max_retries == 5
    assert backend.generate(USER, GenerationParams())[0].text == "hi" and len(server.requests) == 3
    assert OpenAIBackend("m", server.base_url, max_retries=0, real=False)._client.max_retries == 0


def test_gives_up_after_bounded_5xx_retries(fake):
    server = fake(lambda body, i: error_reply(503, "overloaded"))
    with pytest.raises(ModelError, match="HTTP 503 after 3 attempts: overloaded"):
        server.backend(max_retries=2).generate(USER, GenerationParams())
    assert len(server.requests) == 3


def test_429_honours_retry_after(fake, sleeps):
    server = fake(lambda body, i: error_reply(429, "slow down", {"Retry-After": "1"}) if i == 1
                  else chat_reply("ok"))  # fmt: skip
    [c] = server.backend().generate(USER, GenerationParams())
    assert c.text == "ok" and len(server.requests) == 2
    assert sleeps == [1.0]  # the SDK's own first backoff is at most 0.5 s: the wait came from Retry-After


def test_a_retry_after_of_an_hour_is_not_waited_for(fake, sleeps):
    server = fake(lambda body, i: error_reply(429, "later", {"Retry-After": "3600"}) if i == 1
                  else chat_reply("ok"))  # fmt: skip
    with pytest.raises(ModelError, match=r"HTTP 429 after 1 attempt \(not retried: the server asked to wait 3600s\)"):
        server.backend().generate(USER, GenerationParams())
    assert sleeps == [] and len(server.requests) == 1


def test_a_short_retry_after_is_waited_for_until_the_retries_run_out(fake, sleeps):
    server = fake(lambda body, i: error_reply(503, "busy", {"Retry-After": "2"}))
    with pytest.raises(ModelError) as info:
        server.backend(max_retries=2).generate(USER, GenerationParams())
    assert str(info.value).endswith("kept failing with HTTP 503 after 3 attempts: busy")  # no "not retried" note
    assert sleeps == [2.0, 2.0] and len(server.requests) == 3


def test_400_is_not_retried(fake):
    server = fake(lambda body, i: error_reply(400, "max_tokens is too large"))
    with pytest.raises(ModelError, match="HTTP 400.*max_tokens is too large"):
        server.backend().generate(USER, GenerationParams())
    assert len(server.requests) == 1


def test_401_mentions_the_api_key(fake):
    server = fake(lambda body, i: error_reply(401, "Invalid API key"))
    with pytest.raises(ModelError, match="API key") as info:
        server.backend().generate(USER, GenerationParams())
    assert "OPENAI_API_KEY" in str(info.value) and len(server.requests) == 1


def test_404_names_the_model(fake):
    server = fake(lambda body, i: error_reply(404, "model 'fake' not found"))
    with pytest.raises(ModelError, match="404 for model 'fake'"):
        server.backend().generate(USER, GenerationParams())
    assert len(server.requests) == 1


def test_connection_refused_fails_fast_with_a_hint(sleeps):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend("m", f"http://127.0.0.1:{port}/v1", max_retries=2, real=False)
    with pytest.raises(ModelError, match=f"127.0.0.1:{port}/v1 after 3 attempts") as info:
        backend.generate(USER, GenerationParams())
    assert "server running" in str(info.value)
    assert len(sleeps) == 2 and max(sleeps) <= 1.0  # short backoffs between the attempts, nothing more


def test_timeout_is_retried_then_reported(fake):
    server = fake(lambda body, i: chat_reply("late"), delay=1.0)
    with pytest.raises(ModelError, match=r"timed out after 0.2s \(2 attempts\)"):
        server.backend(timeout=0.2, max_retries=1).generate(USER, GenerationParams())
    assert len(server.requests) == 2


def test_missing_choices_are_requested_concurrently_with_distinct_seeds(fake):
    # Like llama-cpp-python's server: n is ignored, one choice per response.
    server = fake(meeting(2, lambda body, i: chat_reply(f"seed={body.get('seed')}"), after=1))
    outs = server.backend().generate(USER, GenerationParams(n=3, temperature=0.8, seed=7))
    assert [c.text for c in outs] == ["seed=7", "seed=8", "seed=9"]
    assert len(server.requests) == 3
    assert server.requests[0]["n"] == 3 and all("n" not in r for r in server.requests[1:])
    assert server.max_in_flight == 2  # the two extra requests ran at the same time


def test_n_choices_in_one_response_split_usage(fake):
    server = fake(lambda body, i: chat_reply("a", "bbbbbbbbb", "cccc", finish="length", completion_tokens=10))
    outs = server.backend().generate(USER, GenerationParams(n=3))
    assert [c.text for c in outs] == ["a", "bbbbbbbbb", "cccc"]
    assert len(server.requests) == 1 and server.requests[0]["n"] == 3
    assert sum(c.completion_tokens for c in outs) == 10
    assert outs[1].completion_tokens > outs[0].completion_tokens
    assert all(c.finish_reason == "length" and c.prompt_tokens == 11 for c in outs)


def test_more_than_four_stops_are_cut_client_side(fake):
    server = fake(lambda body, i: chat_reply("Answer: 4 <END> junk"))
    params = GenerationParams(stop=["s1", "s2", "s3", "s4", "<END>"])
    [c] = server.backend().generate(USER, params)
    assert c.text == "Answer: 4 " and c.finish_reason == "stop"
    assert server.requests[0]["stop"] == ["s1", "s2", "s3", "s4"]


def test_logprobs_are_summed_up_to_the_stop(fake):
    tokens = [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []}
              for t, lp in [("ab", -0.5), ("c", -0.25), ("STOP", -1.0), ("x", -2.0)]]  # fmt: skip
    server = fake(lambda body, i: chat_reply("abcSTOPx", logprobs={"content": tokens}))
    [c] = server.backend().generate(USER, GenerationParams(logprobs=True, stop=["STOP"]))
    assert c.text == "abc" and c.logprob == pytest.approx(-0.75)
    assert server.requests[0]["logprobs"] is True
    [c] = server.backend().generate(USER, GenerationParams())
    assert c.logprob is None


def test_batch_preserves_order_and_bounds_concurrency(fake):
    server = fake(meeting(2, lambda body, i: chat_reply(body["messages"][-1]["content"].upper())))
    convs: list[list[Message]] = [[{"role": "user", "content": f"q{i}"}] for i in range(6)]
    outs = server.backend(concurrency=2).generate_batch(convs, GenerationParams())
    assert [o[0].text for o in outs] == [f"Q{i}" for i in range(6)]
    assert server.max_in_flight == 2


def test_empty_or_malformed_response_is_a_model_error(fake):
    server = fake(lambda body, i: chat_reply())  # no choices at all
    with pytest.raises(ModelError, match="returned no choices"):
        server.backend().generate(USER, GenerationParams())
    server = fake(lambda body, i: (200, {}, {"unexpected": "shape"}))
    with pytest.raises(ModelError, match="no choices"):
        server.backend().generate(USER, GenerationParams())


def test_request_carries_sampling_params(fake):
    server = fake(lambda body, i: chat_reply("ok"))
    params = GenerationParams(temperature=0.7, top_p=0.9, max_tokens=17, seed=3, stop=["\n"])
    server.backend().generate(USER, params)
    body = server.requests[0]
    assert body["model"] == "fake" and body["messages"] == USER
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (0.7, 0.9, 17, 3)
    assert body["stop"] == ["\n"] and "n" not in body and "logprobs" not in body


def test_real_backend_is_guarded_in_unit_tests(fake):
    server = fake(lambda body, i: chat_reply("ok"))
    with pytest.raises(RealModelCallError):
        server.backend(real=True).generate(USER, GenerationParams())
    assert server.requests == []


def test_from_settings_resolves_url_and_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env-host:9/v1")
    backend = OpenAIBackend.from_settings(parse_spec("openai:m"), load_settings())
    assert backend.base_url == "http://env-host:9/v1" and backend._client.api_key == "sk-env"
    assert backend.backend_name == "openai" and backend.spec == "openai:m@http://env-host:9/v1"
    settings = load_settings(openai_api_key="sk-explicit", openai_timeout=7.0)
    backend = OpenAIBackend.from_settings(parse_spec("openai:m@http://127.0.0.1:1/v1/"), settings)
    assert backend.base_url == "http://127.0.0.1:1/v1" and backend._client.api_key == "sk-explicit"
    assert backend.timeout == 7.0
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert OpenAIBackend.from_settings(parse_spec("openai:m"), load_settings()).base_url.startswith(
        "https://api.openai.com/"
    )


def test_openai_stream_against_a_fake_sse_server() -> None:
    """``OpenAIBackend.stream`` reads a real HTTP event stream (a test-owned server that runs no model)."""
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
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        backend = OpenAIBackend("m", f"http://127.0.0.1:{server.server_port}/v1", real=False, max_retries=0)
        gen = backend.stream(USER, GenerationParams(stop=["\nObservation:"]))
        pieces, completion = drain_stream(gen)
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0]["stream"] is True and seen[0]["stop"] == ["\nObservation:"]
    assert len(pieces) > 1 and "".join(pieces) == completion.text == "Thought: add\nAction: calculator"
    assert completion.finish_reason == "stop" and completion.prompt_tokens == 11


# -- grammars: detected once per server, passed through or dropped ------------------------------------

YES_NO = 'root ::= "yes" | "no"'


def openapi(*fields: str) -> dict[str, Any]:
    """A FastAPI-style OpenAPI document whose chat-completion request takes ``fields``."""
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}}
    return {"openapi": "3.1.0", "paths": {"/v1/chat/completions": {"post": {"requestBody": body}}},
            "components": {"schemas": {"ChatRequest": {"properties": {f: {} for f in ("messages", *fields)}}}}}


@pytest.mark.parametrize(("gets", "sent"), [
    ({"/openapi.json": openapi("grammar")}, {"grammar": YES_NO}),  # llama-cpp-python's server
    ({"/openapi.json": openapi("guided_grammar", "structured_outputs")}, {"structured_outputs": {"grammar": YES_NO}}),
    ({"/openapi.json": openapi("guided_grammar")}, {"guided_grammar": YES_NO}),  # vLLM before 0.10.2
    ({"/props": {"default_generation_settings": {}, "total_slots": 4}}, {"grammar": YES_NO}),  # llama-server
    ({"/version": {"version": "0.9.2"}}, {"guided_grammar": YES_NO}),  # vLLM without its OpenAPI page
    ({"/version": {"version": "0.11.0rc1"}}, {"structured_outputs": {"grammar": YES_NO}}),
])
def test_a_grammar_goes_where_the_server_takes_it(fake, gets, sent):
    server = fake(lambda body, i: chat_reply("yes"), gets=gets)
    backend = server.backend()
    assert backend.capabilities.grammar is True
    backend.generate(USER, GenerationParams(grammar=YES_NO))
    backend.generate(USER, GenerationParams(grammar=YES_NO, n=2, temperature=0.5, seed=1))
    asked = list(server.get_paths)
    assert asked and len(asked) == len(set(asked))  # detected once: no path asked twice
    keys = {"grammar", "guided_grammar", "structured_outputs"}
    for body in server.requests:
        assert {k: v for k, v in body.items() if k in keys} == sent


def test_a_server_without_a_grammar_option_gets_none_and_one_warning(fake, caplog):
    server = fake(lambda body, i: chat_reply("Once upon a time"))  # answers 404 to every GET
    backend = server.backend()
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        for _ in range(3):
            backend.generate(USER, GenerationParams(grammar=YES_NO))
    assert backend.capabilities.grammar is False
    assert server.get_paths == ["/openapi.json", "/props", "/version"]
    assert all("grammar" not in json.dumps(body) for body in server.requests) and len(server.requests) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "takes no grammar" in warnings[0] and server.base_url in warnings[0]


def test_an_openapi_schema_without_grammar_fields_decides_alone(fake):
    server = fake(lambda body, i: chat_reply("x"), gets={"/openapi.json": openapi("temperature"),
                                                         "/props": {"default_generation_settings": {}}})
    assert server.backend().capabilities.grammar is False
    assert server.get_paths == ["/openapi.json"]


def test_no_grammar_asks_nothing_and_sends_nothing(fake):
    server = fake(lambda body, i: chat_reply("x"), gets={"/openapi.json": openapi("grammar")})
    server.backend().generate(USER, GenerationParams())
    assert server.get_paths == [] and "grammar" not in server.requests[0]


def test_the_official_api_is_not_asked(monkeypatch):
    import httpx

    from ponder.models.openai_grammar import detect_grammar_option

    monkeypatch.setattr(httpx, "Client", lambda *a, **k: pytest.fail("no detection request to the OpenAI API"))
    assert detect_grammar_option("https://api.openai.com/v1", "sk-x") is None


def test_a_streamed_request_carries_the_grammar(fake):
    seen: list[dict] = []

    def handler(body, i):
        seen.append(body)
        return error_reply(400, "no streams here")

    server = fake(handler, gets={"/openapi.json": openapi("grammar")})
    with pytest.raises(ModelError):
        list(server.backend(max_retries=0).stream(USER, GenerationParams(grammar=YES_NO)))
    assert seen[0]["stream"] is True and seen[0]["grammar"] == YES_NO


# -- integration tests (real llama.cpp server) ---------------------------------------------------------

ASK: list[Message] = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def llama(llama_server: str) -> OpenAIBackend:
    return OpenAIBackend("smollm2", llama_server, timeout=60, max_retries=1)


@pytest.mark.integration
def test_llama_chat_completion(llama):
    [c] = llama.generate(ASK, GenerationParams(max_tokens=16))
    assert c.text.strip() and c.prompt_tokens > 0 and 0 < c.completion_tokens <= 16
    assert c.finish_reason in ("stop", "length")


@pytest.mark.integration
def test_llama_stop_sequences(llama):
    [free] = llama.generate(ASK, GenerationParams(max_tokens=24))
    words = free.text.split()
    assert len(words) >= 2, free.text
    stop = " " + words[1]  # the greedy output would contain it: it must be cut before it
    [c] = llama.generate(ASK, GenerationParams(max_tokens=24, stop=[stop]))
    assert stop not in c.text and free.text.startswith(c.text) and c.finish_reason == "stop"
    assert len(c.text) < len(free.text)


@pytest.mark.integration
def test_llama_n_samples(llama):
    params = GenerationParams(n=4, temperature=0.8, seed=1, max_tokens=16)
    outs = llama.generate(ASK, params)
    assert len(outs) == 4 and all(c.prompt_tokens > 0 for c in outs)
    assert len({c.text for c in outs}) >= 2  # seeds differ per sample
    assert [c.text for c in llama.generate(ASK, params)] == [c.text for c in outs]  # reproducible


@pytest.mark.integration
def test_llama_batch_preserves_order(llama):
    convs: list[list[Message]] = [[{"role": "user", "content": q}] for q in
                                  ("Say hello.", "Name a color.", "Count to three.")]  # fmt: skip
    params = GenerationParams(max_tokens=12)
    single = [llama.generate(conv, params)[0].text for conv in convs]
    batch = [outs[0].text for outs in llama.generate_batch(convs, params)]
    assert batch == single and len(set(single)) == 3


@pytest.mark.integration
def test_llama_logprobs(llama):
    [c] = llama.generate(ASK, GenerationParams(max_tokens=8, logprobs=True))
    # llama-cpp-python returns chat logprobs when top_logprobs is sent (the backend always sends 0).
    assert c.logprob is not None and c.logprob <= 0.0
    [plain] = llama.generate(ASK, GenerationParams(max_tokens=8))
    assert plain.logprob is None and plain.text == c.text


@pytest.mark.integration
def test_llama_server_grammar_constrains_the_output(llama):
    story: list[Message] = [{"role": "user", "content": "Tell me a short story about a cat."}]
    assert llama.capabilities.grammar is True
    [free] = llama.generate(story, GenerationParams(max_tokens=16))
    assert free.text.strip() not in ("yes", "no")
    for seed in range(3):
        [c] = llama.generate(story, GenerationParams(max_tokens=16, temperature=1.0, seed=seed, grammar=YES_NO))
        assert c.text in ("yes", "no")


# -- option scoring (logprobs + top_logprobs) -----------------------------------------------------------


def _top_reply(top: list[tuple[str, float]]) -> Reply:
    entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
    first = {**entries[0], "top_logprobs": entries}
    return chat_reply(top[0][0], completion_tokens=1, logprobs={"content": [first]})


def test_option_logprobs_asks_for_one_token_and_matches_the_top_list(fake):
    server = fake(lambda body, i: _top_reply([("no", -0.3), ("yes", -1.5), (" Yes", -4.0)]))
    backend = server.backend()
    scored = backend.option_logprobs(USER, ["yes", "no", "Yes", "maybe"])
    assert scored.logprobs == [-1.5, -0.3, -4.0, -1e4] and scored.prompt_tokens == 11
    body = server.requests[0]
    assert (body["max_tokens"], body["logprobs"], body["top_logprobs"], body["temperature"]) == (1, True, 20, 0.0)
    assert backend.capabilities.option_logprobs


def test_option_logprobs_without_server_logprobs_turns_the_capability_off(fake):
    server = fake(lambda body, i: chat_reply("yes", completion_tokens=1))
    backend = server.backend()
    assert backend.capabilities.option_logprobs
    with pytest.raises(ModelError, match="no log-probabilities"):
        backend.option_logprobs(USER, ["yes", "no"])
    assert not backend.capabilities.option_logprobs
    with pytest.raises(ModelError, match="cannot score options"):
        backend.option_logprobs(USER, ["yes", "no"])
    assert len(server.requests) == 1  # asked once
    with pytest.raises(ModelError, match="distinct"):
        backend.option_logprobs(USER, ["yes", "yes"])


@pytest.mark.integration
def test_llama_server_option_logprobs(llama):
    ask: list[Message] = [{"role": "user", "content": "Is Paris the capital of France? Answer yes or no."}]
    scored = llama.option_logprobs(ask, ["Yes", "No", "yes", "no"])
    assert llama.capabilities.option_logprobs and scored.prompt_tokens > 0
    assert all(-1e4 <= v <= 0 for v in scored.logprobs) and max(scored.logprobs) > -1e4  # some option in the top 20
    assert sum(math.exp(v) for v in scored.logprobs) <= 1 + 1e-6
    [greedy] = llama.generate(ask, GenerationParams(max_tokens=1, logprobs=True))
    assert llama.option_logprobs(ask, [greedy.text, "zebra"]).logprobs[0] == pytest.approx(greedy.logprob, abs=1e-4)
