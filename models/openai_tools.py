"""Native tool calling and JSON-Schema replies on an OpenAI-compatible server, found once by asking it.

Two features of a server are not stated anywhere a client can read, so :class:`ServerFeatures` asks the server
itself with two tiny generations (``temperature=0``, no retries), once per backend, on first use, and logs what
it found at INFO:

* **tool calls** (``capabilities.tool_calls``): a request with one tool, ``tool_choice="auto"`` and a user turn
  that asks for exactly that call. The server supports native tool calling when the reply carries a
  ``tool_calls`` entry naming the tool. A server that rejects ``tools`` (vLLM without
  ``--enable-auto-tool-choice`` answers 400, llama.cpp's ``llama-server`` without ``--jinja`` 500) or
  accepts them and ignores them (llama-cpp-python with a plain chat format answers in text) does not. The probe
  uses ``auto``, the choice ReAct sends, and not a named ``tool_choice``: llama-cpp-python honours a named
  choice with a grammar in *every* chat format, while its plain formats ignore ``auto``.
* **JSON-Schema replies** (``capabilities.json_schema``): a request whose ``response_format`` allows one JSON
  object only (``{"probe": "ok"}``) for a prompt that does not ask for it. The standard form
  ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`` (OpenAI, vLLM, llama-server) is
  tried first, then llama-cpp-python's ``{"type": "json_object", "schema": ...}``; the first the server honours
  (the reply is exactly that object) is the form used afterwards.

The official OpenAI API is known to have both (nothing is asked). A backend made with ``tool_calls=`` /
``json_schema=`` given is not asked about that feature either.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ponder.models.base import GenerationParams, ToolCall

logger = logging.getLogger("ponder.models")

#: How a server takes a JSON Schema for the reply.
ResponseFormat = Literal["json_schema", "json_object"]
#: Hosts known to support both features (nothing is asked).
KNOWN_HOSTS = ("api.openai.com",)
#: Tokens a probe may generate.
PROBE_TOKENS = 48
#: Seconds a probe may take at most (the backend's own timeout when shorter).
PROBE_TIMEOUT_S = 30.0
_PROBE_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris"],
                                                             "description": "The city."}},
                   "required": ["city"]}}}
_PROBE_TOOL_ASK = "Call the get_weather function for Paris."
_PROBE_SCHEMA = {"type": "object", "properties": {"probe": {"type": "string", "enum": ["ok"]}},
                 "required": ["probe"], "additionalProperties": False}
_PROBE_JSON_ASK = "Say hello."

#: ``(request kwargs) -> the SDK's response, or None when the server refused or failed``.
Probe = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Features:
    """What a server supports: native tool calls, and the ``response_format`` form it honours (``None``: none)."""

    tool_calls: bool
    response_format: ResponseFormat | None


class ServerFeatures:
    """Native tool calling and JSON-Schema replies of one server: asked once (thread-safe) on first use.

    Args:
        base_url: The server's base URL (for the log and the known hosts).
        model: The model name the probes ask for.
        probe: Sends one probe request without retries; ``None`` when the server refused it or failed.
        tool_calls: Known answer for tool calls (``None``: ask the server).
        json_schema: Known answer for JSON-Schema replies (``True`` means the standard form; ``None``: ask).
    """

    def __init__(self, base_url: str, model: str, probe: Probe, *, tool_calls: bool | None = None,
                 json_schema: bool | None = None) -> None:
        self.base_url, self.model, self._probe = base_url, model, probe
        known = any(host in base_url for host in KNOWN_HOSTS)
        self._known_tools = True if known and tool_calls is None else tool_calls
        self._known_json = True if known and json_schema is None else json_schema
        self._features: Features | None = None
        self._warned = False
        self._lock = threading.Lock()

    @property
    def features(self) -> Features:
        """The server's features (asked on the first read, then remembered)."""
        with self._lock:
            if self._features is None:
                tools = self._known_tools if self._known_tools is not None else self._ask_tool_calls()
                form: ResponseFormat | None = ("json_schema" if self._known_json else None) \
                    if self._known_json is not None else self._ask_response_format()
                self._features = Features(tools, form)
                logger.info("%s: native tool calls: %s; JSON-Schema replies: %s", self.base_url,
                            "yes" if tools else "no (ReAct uses the text protocol)", form or "no")
        return self._features

    def request_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        """The request fields for ``params.tools`` / ``tool_choice`` / ``json_schema`` the server supports.

        Tools sent to a server without native tool calls are dropped with one warning; a JSON Schema the server
        cannot enforce is dropped silently (callers validate the reply).
        """
        if not params.tools and not params.json_schema:
            return {}
        features, out = self.features, {}
        if params.tools and features.tool_calls:
            out["tools"] = params.tools
            if params.tool_choice:
                out["tool_choice"] = params.tool_choice
        elif params.tools:
            with self._lock:
                warn, self._warned = not self._warned, True
            if warn:
                logger.warning("%s has no native tool calling: the tools of this request are not sent",
                               self.base_url)
        if params.json_schema and features.response_format:
            out["response_format"] = response_format(features.response_format, params.json_schema)
        return out

    def _ask_tool_calls(self) -> bool:
        response = self._probe({"model": self.model, "messages": [{"role": "user", "content": _PROBE_TOOL_ASK}],
                                "tools": [_PROBE_TOOL], "tool_choice": "auto", "temperature": 0.0,
                                "max_tokens": PROBE_TOKENS})
        if response is None or not response.choices:
            return False
        calls = read_tool_calls(response.choices[0].message)
        return any(c.name == _PROBE_TOOL["function"]["name"] for c in calls)

    def _ask_response_format(self) -> ResponseFormat | None:
        form: ResponseFormat
        for form in ("json_schema", "json_object"):
            response = self._probe({"model": self.model, "messages": [{"role": "user", "content": _PROBE_JSON_ASK}],
                                    "response_format": response_format(form, _PROBE_SCHEMA), "temperature": 0.0,
                                    "max_tokens": PROBE_TOKENS})
            if response is not None and response.choices and _is_probe_object(response.choices[0].message.content):
                return form
        return None


def response_format(form: ResponseFormat, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` request field that asks for a reply following ``schema`` in the server's form."""
    if form == "json_object":
        return {"type": "json_object", "schema": schema}
    title = schema.get("title")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", title)[:64] if isinstance(title, str) and title else "answer"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict_ok(schema)}}


def strict_ok(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes ``schema``.

    It does when every object lists all its properties as required and sets ``additionalProperties`` to false
    (the official API refuses a strict schema otherwise; vLLM and llama.cpp enforce the schema either way).
    """
    if isinstance(schema, list):
        return all(strict_ok(x) for x in schema)
    if not isinstance(schema, dict):
        return True
    if isinstance(schema.get("properties"), dict) and (
            schema.get("additionalProperties") is not False
            or set(schema.get("required") or ()) != set(schema["properties"])):
        return False
    return all(strict_ok(v) for k, v in schema.items() if k not in ("enum", "const", "default", "examples"))


def read_tool_calls(message: Any) -> list[ToolCall]:
    """The function tool calls of an SDK chat message (``message.tool_calls``), as :class:`ToolCall` records.

    A call without an id gets ``call_<i>``; a call with no arguments gets ``{}``; other call types (custom tools)
    are left out.
    """
    out = []
    for i, call in enumerate(message.tool_calls or []):
        if call.type != "function":
            continue
        out.append(ToolCall(id=call.id or f"call_{i}", name=call.function.name or "",
                            arguments=call.function.arguments or "{}"))
    return out


def _is_probe_object(content: str | None) -> bool:
    try:
        return json.loads(content or "") == {"probe": "ok"}
    except ValueError:
        return False
