"""Native tool calls and JSON-Schema replies on an OpenAI-compatible server (fake server: no model behind it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from testkit import drain_stream

from ponder.models.base import GenerationParams, Message
from ponder.models.openai_tools import response_format
from ponder.tests.models.fake_openai_server import FakeServer, Reply, chat_reply, error_reply, fake_servers

USER: list[Message] = [{"role": "user", "content": "What is 6 * 7?"}]
CALC = {"type": "function", "function": {"name": "calculator", "description": "Evaluate arithmetic.",
                                         "parameters": {"type": "object",
                                                        "properties": {"expression": {"type": "string"}},
                                                        "required": ["expression"]}}}


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    yield from fake_servers()


def tool_reply(name: str, arguments: str, call_id: str = "call_1") -> Reply:
    status, headers, body = chat_reply("")
    message = body["choices"][0]["message"]
    message["content"] = None
    message["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]
    body["choices"][0]["finish_reason"] = "tool_calls"
    return status, headers, body


def native_server(body: dict[str, Any], i: int) -> Reply:
    """A server with a tool-call parser and the standard response_format: the probes succeed."""
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        return tool_reply(name, '{"city": "Paris"}' if name == "get_weather" else '{"expression": "6 * 7"}')
    if body.get("response_format"):
        return chat_reply('{"probe": "ok"}')
    return chat_reply("plain text")


def probes(server: FakeServer) -> list[dict[str, Any]]:
    return [b for b in server.requests if b["messages"][0]["content"] in ("Call the get_weather function for "
                                                                          "Paris.", "Say hello.")]


def test_a_server_with_native_tools_is_found_once_and_gets_tools_and_response_format(fake, caplog):
    server = fake(native_server)
    backend = server.backend(tool_calls=None, json_schema=None)
    with caplog.at_level(logging.INFO, logger="ponder.models"):
        caps = backend.capabilities
        assert caps.tool_calls and caps.json_schema
        assert backend.capabilities.tool_calls  # asked once
    assert len(probes(server)) == 2 and probes(server)[0]["tool_choice"] == "auto"
    assert sum("native tool calls: yes" in r.getMessage() for r in caplog.records) == 1
    [c] = backend.generate(USER, GenerationParams(tools=[CALC], tool_choice="auto"))
    sent = server.requests[-1]
    assert sent["tools"] == [CALC] and sent["tool_choice"] == "auto"
    assert [(t.id, t.name, json.loads(t.arguments)) for t in c.tool_calls] == [
        ("call_1", "calculator", {"expression": "6 * 7"})]
    assert c.text == "" and c.finish_reason == "stop"
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
    backend.generate(USER, GenerationParams(json_schema=schema))
    assert server.requests[-1]["response_format"] == {  # strict only where OpenAI's strict mode takes the schema
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}}
    closed = {**schema, "additionalProperties": False}
    assert response_format("json_schema", closed)["json_schema"]["strict"] is True
    nested = {**closed, "properties": {"answer": {"type": "object", "properties": {"x": {"type": "integer"}}}}}
    assert response_format("json_schema", nested)["json_schema"]["strict"] is False


def test_native_messages_pass_through(fake):
    server = fake(native_server)
    backend = server.backend(tool_calls=True)
    history: list[Message] = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    backend.generate(history, GenerationParams(tools=[CALC], tool_choice="auto"))
    assert server.requests[-1]["messages"] == history


@pytest.mark.parametrize("refusal", [400, 500])
def test_a_server_that_rejects_tools_has_no_native_calls(fake, caplog, refusal):
    def handler(body: dict[str, Any], i: int) -> Reply:
        if body.get("tools"):
            return error_reply(refusal, '"auto" tool choice requires --enable-auto-tool-choice')
        return chat_reply("text")

    server = fake(handler)
    backend = server.backend(tool_calls=None)
    assert backend.capabilities.tool_calls is False
    assert sum(1 for b in server.requests if b.get("tools")) == 1  # the probe is not retried
    with caplog.at_level(logging.WARNING, logger="ponder.models"):
        for _ in range(2):
            [c] = backend.generate(USER, GenerationParams(tools=[CALC], tool_choice="auto"))
            assert c.text == "text" and c.tool_calls == []
    assert "tools" not in server.requests[-1]
    assert sum("no native tool calling" in r.getMessage() for r in caplog.records) == 1


def test_a_server_that_ignores_tools_has_no_native_calls(fake):
    server = fake(lambda body, i: chat_reply("I would call get_weather."))  # like a plain chat format
    backend = server.backend(tool_calls=None, json_schema=None)
    caps = backend.capabilities
    assert caps.tool_calls is False and caps.json_schema is False
    assert len(probes(server)) == 3  # one tool probe, both response_format forms
    [c] = backend.generate(USER, GenerationParams(json_schema={"type": "object"}))
    assert "response_format" not in server.requests[-1] and c.text.startswith("I would")


def test_the_json_object_form_is_used_where_only_it_is_honoured(fake):
    def handler(body: dict[str, Any], i: int) -> Reply:  # llama-cpp-python: type must be text or json_object
        form = body.get("response_format")
        if form and form["type"] != "json_object":
            return error_reply(422, "Input should be 'text' or 'json_object'")
        return chat_reply('{"probe": "ok"}' if form else "hi")

    server = fake(handler)
    backend = server.backend(json_schema=None)
    assert backend.capabilities.json_schema
    schema = {"title": "My Answer!", "type": "object"}
    backend.generate(USER, GenerationParams(json_schema=schema))
    assert server.requests[-1]["response_format"] == {"type": "json_object", "schema": schema}
    assert response_format("json_schema", schema)["json_schema"]["name"] == "My_Answer_"


def test_the_official_api_and_given_answers_are_not_asked(fake):
    server = fake(native_server)
    assert server.backend(tool_calls=True, json_schema=False).capabilities.tool_calls
    assert server.requests == []
    from ponder.models.openai import OpenAIBackend

    official = OpenAIBackend("gpt-4o-mini", "https://api.openai.com/v1", real=False)
    caps = official.capabilities
    assert caps.tool_calls and caps.json_schema


def test_a_real_server_is_not_probed_in_unit_tests(fake):
    server = fake(native_server)
    backend = server.backend(real=True, tool_calls=None, json_schema=None)
    assert backend.capabilities.tool_calls is False and server.requests == []


def test_a_streamed_request_with_tools_comes_at_once_with_its_calls(fake):
    server = fake(native_server)
    backend = server.backend(tool_calls=True)
    stream = backend.stream(USER, GenerationParams(tools=[CALC], tool_choice="auto"))
    pieces, completion = drain_stream(stream)
    assert pieces == [] and [c.name for c in completion.tool_calls] == ["calculator"]
    assert "stream" not in server.requests[-1] and server.requests[-1]["tools"] == [CALC]
