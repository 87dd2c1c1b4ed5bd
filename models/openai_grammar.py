"""Which grammar option an OpenAI-compatible server takes, found once by asking the server itself.

A GBNF grammar (``GenerationParams.grammar``) reaches a server through the request body (the SDK's
``extra_body``), under a name that depends on the server:

* ``grammar``: llama.cpp's own server (``llama-server``) and llama-cpp-python's server.
* ``structured_outputs``: vLLM 0.10.2 and later, as ``{"structured_outputs": {"grammar": ...}}``.
* ``guided_grammar``: vLLM before 0.12 (removed there in favour of ``structured_outputs``).

:func:`detect_grammar_option` asks, in order, with a short timeout and no retries:

1. ``<root>/openapi.json`` (FastAPI servers: vLLM, llama-cpp-python): the chat-completion request schema lists
   the fields the server accepts; the first of ``structured_outputs``, ``guided_grammar``, ``grammar`` found
   there is the answer, and a schema with none of them means the server cannot constrain.
2. ``<root>/props`` (llama.cpp's server answers with its generation settings): ``grammar``.
3. ``<root>/version`` (vLLM): ``structured_outputs`` from 0.10.2 on, else ``guided_grammar``.

``<root>`` is the base URL without its trailing ``/v1``. Anything else (no answer, an error, the official OpenAI
API, which takes no grammars) means: no grammar option.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Literal

logger = logging.getLogger("ponder.models")

#: How a server takes a grammar.
GrammarOption = Literal["grammar", "guided_grammar", "structured_outputs"]
#: The request-schema fields that carry a grammar, in order of preference.
SCHEMA_FIELDS: tuple[GrammarOption, ...] = ("structured_outputs", "guided_grammar", "grammar")
#: Servers known to take no grammar (no request is sent to find out).
NO_GRAMMAR_HOSTS = ("api.openai.com",)
#: The first vLLM release with ``structured_outputs``.
VLLM_STRUCTURED_OUTPUTS = (0, 10, 2)
DETECT_TIMEOUT_S = 5.0


class ServerGrammar:
    """How one server takes grammars: asked once (thread-safe) on first use, then remembered.

    Args:
        base_url: The server's base URL (ending in ``/v1``).
        api_key: Sent as the bearer token of the detection requests.
    """

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url, self._api_key = base_url, api_key
        self._option: GrammarOption | None = None
        self._detected = False
        self._warned = False
        self._lock = threading.Lock()

    @property
    def option(self) -> GrammarOption | None:
        """The server's grammar option, ``None`` when it takes none (detected on the first read)."""
        with self._lock:
            if not self._detected:
                self._option = detect_grammar_option(self.base_url, self._api_key)
                self._detected = True
                logger.info("%s takes grammars as: %s", self.base_url, self._option or "(none)")
        return self._option

    @property
    def supported(self) -> bool:
        """Whether the server takes grammars."""
        return self.option is not None

    def request_kwargs(self, grammar: str | None) -> dict[str, Any]:
        """The SDK's ``extra_body`` carrying ``grammar``; ``{}`` without a grammar or a server that takes none.

        A grammar the server cannot take is dropped with one warning per server.
        """
        if not grammar:
            return {}
        option = self.option
        if option is None:
            with self._lock:
                warn, self._warned = not self._warned, True
            if warn:
                logger.warning("%s takes no grammar (no grammar option found); its output is not constrained",
                               self.base_url)
            return {}
        return {"extra_body": grammar_body(option, grammar)}


def grammar_body(option: GrammarOption, grammar: str) -> dict[str, Any]:
    """The ``extra_body`` entries that send ``grammar`` under ``option``."""
    if option == "structured_outputs":
        return {"structured_outputs": {"grammar": grammar}}
    return {option: grammar}


def detect_grammar_option(base_url: str, api_key: str, *,
                          timeout: float = DETECT_TIMEOUT_S) -> GrammarOption | None:
    """Ask the server at ``base_url`` how it takes a grammar (see the module docstring); ``None``: it does not."""
    import httpx

    if any(host in base_url for host in NO_GRAMMAR_HOSTS):
        return None
    root = re.sub(r"/v1/?$", "", base_url.rstrip("/"))
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(timeout=timeout, headers=headers, follow_redirects=False) as client:
        schema = _get_json(client, f"{root}/openapi.json")
        if isinstance(schema, dict) and "paths" in schema:
            fields = _chat_request_fields(schema)
            if fields is not None:
                return next((f for f in SCHEMA_FIELDS if f in fields), None)
        props = _get_json(client, f"{root}/props")
        if isinstance(props, dict) and ("default_generation_settings" in props or "build_info" in props):
            return "grammar"
        version = _get_json(client, f"{root}/version")
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            return "structured_outputs" if _release(version["version"]) >= VLLM_STRUCTURED_OUTPUTS else "guided_grammar"
    return None


def _get_json(client: Any, url: str) -> Any:
    """The JSON a GET of ``url`` answers with, or ``None`` (no answer, an error status, not JSON)."""
    import httpx

    try:
        response = client.get(url)
        if response.status_code != 200:
            return None
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.debug("grammar detection: GET %s failed: %s", url, exc)
        return None


def _chat_request_fields(schema: dict[str, Any]) -> set[str] | None:
    """The property names of the chat-completion request body in an OpenAPI document (``None``: not listed)."""
    try:
        post = schema["paths"]["/v1/chat/completions"]["post"]
        body = post["requestBody"]["content"]["application/json"]["schema"]
        for _ in range(4):  # follow $ref / allOf / anyOf down to the object with the properties
            if "$ref" in body:
                body = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
            elif "properties" not in body and (body.get("allOf") or body.get("anyOf")):
                body = (body.get("allOf") or body.get("anyOf"))[0]
            else:
                break
        return set(body["properties"])
    except (KeyError, TypeError, IndexError, AttributeError):
        return None


def _release(version: str) -> tuple[int, ...]:
    """``"0.11.0rc2"`` → ``(0, 11, 0)``: the leading numbers of a version string."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = re.match(r"\d+", piece)
        if not digits:
            break
        parts.append(int(digits.group()))
    return tuple(parts)
