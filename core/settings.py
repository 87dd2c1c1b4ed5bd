"""Settings: defaults < ``ponder.toml`` < ``PONDER_*`` environment variables < explicit overrides (CLI flags).

Nothing is read at import time: call :func:`load_settings` when you need settings.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ponder.core.errors import ConfigError
from ponder.core.model_spec import check_base_urls, parse_spec
from ponder.core.types import (
    AgentName,
    ConstrainMode,
    GgufFormat,
    IsolationMode,
    MCPTransport,
    MemoryMode,
    SandboxKind,
    SearchMode,
    ToolName,
    ToolProtocol,
    choices,
)

PACKAGE_DIR = Path(__file__).resolve().parent.parent


#: The data ponder ships (evaluation suites, search corpora, ALFWorld files): ``data/`` in the package.
SHIPPED_DATA_DIR = PACKAGE_DIR / "data"


def default_data_dir() -> Path:
    """Return the shipped data folder, ``data/`` inside the ``ponder`` package.

    It is the repository's ``data/`` in a checkout and package data in an installed ponder; the path is
    absolute, so it does not depend on the working directory. The ``data_dir`` setting replaces it with a
    folder of the user's own files in the same layout (see ``data/README.md``).
    """
    return SHIPPED_DATA_DIR


def default_cache_dir() -> Path:
    """Return the user cache directory for converted weights and indexes (honours XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder"


def default_memory_dir() -> Path:
    """Where the Chroma memory store lives by default (honours XDG_DATA_HOME)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ponder" / "memory"


def config_file() -> Path:
    """Return the TOML file to read: ``$PONDER_CONFIG`` or ``./ponder.toml``."""
    return Path(os.environ.get("PONDER_CONFIG", "ponder.toml"))


class _Group(BaseModel):
    """A group of settings: the fields one part of ponder reads (unknown names are errors)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class PathSettings(_Group):
    """Where ponder reads its data and writes runs and caches."""

    data_dir: Path = Field(default_factory=default_data_dir, description="Evaluation data and search corpora "
                           "(default: the data/ folder shipped inside the package).")
    out_dir: Path = Path("runs")
    cache_dir: Path = Field(default_factory=default_cache_dir)


class ModelSettings(PathSettings):
    """The model and how it samples (the paths: converted weights live under ``cache_dir``)."""

    model: str = Field("embedded", description="Model spec: embedded | llamacpp[:gguf] | transformers[:gguf|dir] "
                       "| openai:<model>@<base_url>[,<base_url>...] | scripted:<file.jsonl>")
    device: str = Field("cpu", description="Torch device for the transformers backend (cpu, cuda, cuda:1).")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=32768, description="Max new tokens per model call.")
    seed: int | None = None
    logprobs: bool = Field(False, description="Ask the model for token log-probabilities (weighted votes).")

    @field_validator("model")
    @classmethod
    def _check_model_spec(cls, value: str) -> str:
        parse_spec(value)  # raises ConfigError with a clear message
        return value


class OpenAISettings(_Group):
    """The backend for OpenAI-compatible servers."""

    openai_api_key: str = Field("EMPTY", description="API key for the openai backend (also OPENAI_API_KEY).")
    openai_timeout: float = Field(120.0, gt=0)
    openai_max_retries: int = Field(3, ge=0, le=20, description="Retries of the openai client (its own backoff); "
                                    "with several base URLs: waits for a server to come back when all are out.")
    openai_concurrency: int = Field(8, ge=1, le=256)
    openai_context_window: int | None = Field(
        None, ge=1, description="Context size in tokens of the model behind the openai backend, when known "
        "(agents then elide old observations before a prompt would not fit); default: unknown.")
    openai_base_urls: list[str] = Field(
        default_factory=list, description="Base URLs of identical OpenAI-compatible servers (e.g. vLLM replicas), "
        "used when an openai: spec names no URL; two or more: requests are spread over them (least in flight, "
        "one episode per server, a failing server taken out and retried later). A spec's own @URL1,URL2 wins.")

    @field_validator("openai_base_urls")
    @classmethod
    def _check_base_urls(cls, value: list[str]) -> list[str]:
        return check_base_urls(value)  # raises ConfigError naming the bad URL


class LlamaCppSettings(ModelSettings):
    """The in-process llama.cpp backend (with the model settings it reads too: seed, cache_dir)."""

    llamacpp_threads: int | None = Field(
        None, ge=1, le=512, description="CPU threads for the llamacpp backend (default: physical cores minus "
        "those busy with other work at load time).")
    llamacpp_n_ctx: int = Field(4096, ge=256, le=1_048_576,
                                description="Context size in tokens (prompt + completion) for the llamacpp backend.")
    llamacpp_prompt_cache: bool = Field(True, description="Save the KV state of long prompt prefixes under "
                                        "cache_dir, so later runs skip evaluating the agent's system prompt.")
    llamacpp_probe_command: list[str] | None = Field(
        None, min_length=1, description="The crash guard's child command (the GGUF path is appended); default: "
        "python -m ponder.models.llamacpp_probe. Tests inject a child that crashes.")
    llamacpp_format: GgufFormat = Field(
        "auto", description="The GGUF format llama.cpp runs: auto (the embedded model converted once to the "
        "format measured fastest; your own GGUF as it is), original, or q4_0 / q8_0 (a converted copy, cached).")
    llamacpp_slots: int = Field(8, ge=1, le=64, description="Sequence slots of the llamacpp continuous-batching "
                                "engine: requests decoded together (concurrent calls, self-consistency samples).")
    llamacpp_kv_cells: int | None = Field(
        None, ge=256, le=4_194_304, description="KV cells of the llamacpp engine, split evenly between its slots "
        "(a slot holds one request's prompt plus completion; default: llamacpp_slots x llamacpp_n_ctx, capped at "
        "2 GiB of KV cache).")


class AgentSettings(_Group):
    """Which agent runs and its limits."""

    agent: AgentName = "react"
    max_steps: int = Field(8, ge=1, le=200, description="Max agent steps (model calls) per run.")
    max_parse_failures: int = Field(3, ge=1, le=50, description="Consecutive malformed outputs before giving up.")
    pal_retries: int = Field(2, ge=0, le=20, description="Extra PAL attempts after a failed program.")
    tools: list[ToolName] = Field(default_factory=lambda: ["calculator", "python"],
                                  description=f"ReAct tools: {', '.join(choices(ToolName))}.")
    constrained_steps: ConstrainMode = Field(
        "auto", description="Grammar-constrained agent steps (ReAct, PAL, env agent): on, off, or auto (on when "
        "the backend supports grammars).")


class SandboxSettings(_Group):
    """Where and how model-written code runs (PAL and the ReAct ``python`` tool)."""

    sandbox: SandboxKind = Field("local", description="Where model-written code runs: a local isolated "
                                 "kernel or an E2B cloud sandbox (needs E2B_API_KEY).")
    sandbox_isolation: IsolationMode = Field(
        "auto", description="Isolation of the local sandbox: auto (= bwrap; stops with an error if bubblewrap is "
        "missing or cannot start), bwrap, or, on purpose and warned every session, unshare (network and pid "
        "namespaces, your files readable) or none (no filesystem or network isolation); never as root.")
    exec_timeout: float = Field(5.0, gt=0, le=600, description="Wall-clock seconds per program run.")
    exec_memory_mb: int = Field(512, ge=32)
    exec_output_chars: int = Field(4000, ge=100)


class SearchSettings(PathSettings):
    """The search tools (the corpus defaults to one in ``data_dir``; indexes are cached under ``cache_dir``)."""

    search_corpus: Path | None = Field(None, description="JSONL corpus {id,title,text} for the search tools "
                                       "(default: <data_dir>/hotpotqa/corpus.jsonl).")
    search_mode: SearchMode = "bm25"
    search_k: int = Field(5, ge=1, le=100, description="Results returned by the top-k search tool.")


class MemorySettings(_Group):
    """The Chroma memory store runs read and write."""

    memory: MemoryMode = Field("none", description="Memory used by runs: none (clean baseline), reflexion, "
                               "expel or both.")
    memory_path: Path = Field(default_factory=default_memory_dir, description="Chroma PersistentClient directory.")
    memory_url: str | None = Field(None, description="A Chroma server (http://host:port); overrides memory_path.")
    memory_namespace: str = Field("default", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
    memory_k: int = Field(3, ge=1, le=50, description="Memories retrieved per kind.")
    memory_capacity: int = Field(10_000, ge=1, description="Max records per collection before eviction.")
    memory_duplicate_threshold: float = Field(0.95, gt=0, le=1, description="Cosine similarity above which a "
                                              "new memory is a near-duplicate and is not stored.")
    memory_max_chars: int = Field(4000, ge=10, description="Longer memories are rejected.")


class MCPServerConfig(_Group):
    """One MCP server whose tools an agent may use: ``[mcp.servers.NAME]`` in ``ponder.toml``.

    Exactly one of ``command`` (a child process spoken to over stdio) or ``url`` (streamable HTTP) is set.
    """

    command: str | None = Field(None, min_length=1, description="The server program (stdio transport).")
    args: list[str] = Field(default_factory=list, description="Arguments of the server program.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables for the server program "
                                "(added to a minimal environment: the host's secrets are not passed on).")
    cwd: Path | None = Field(None, description="Working directory of the server program.")
    url: str | None = Field(None, pattern=r"^https?://", description="The server's streamable-HTTP endpoint.")
    headers: dict[str, str] = Field(default_factory=dict, description="HTTP headers (e.g. Authorization).")
    startup_timeout: float = Field(30.0, gt=0, le=600, description="Seconds to start, connect and list tools.")
    call_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds one tool call may take.")
    tools: list[str] | None = Field(None, description="Only these of the server's tools (default: all).")
    prefix: str = Field("", pattern=r"^[A-Za-z0-9_-]*$", max_length=32,
                        description="Put before each tool name (e.g. 'fs_'), to keep names from clashing.")

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("set exactly one of 'command' (stdio) or 'url' (streamable HTTP)")
        return self

    @property
    def transport(self) -> MCPTransport:
        """``stdio`` for a command, ``http`` for a URL."""
        return "stdio" if self.command is not None else "http"


class MCPConfig(_Group):
    """The ``[mcp]`` table: the MCP servers ponder knows, by name."""

    servers: dict[str, MCPServerConfig] = Field(default_factory=dict)


class EcosystemSettings(_Group):
    """MCP tools, native tool calling, structured output and tracing."""

    mcp: MCPConfig = Field(default_factory=MCPConfig, description="MCP servers ([mcp.servers.NAME] tables).")
    mcp_servers: list[str] = Field(default_factory=list, description="MCP servers (names from [mcp.servers]) "
                                   "whose tools join the ReAct agent's tools (--mcp NAME).")
    tool_calling: ToolProtocol = Field(
        "auto", description="How ReAct calls tools: auto (the server's native function calling when it has "
        "one, else text), native, or text (Thought / Action / Action Input).")
    output_schema: str | None = Field(
        None, description="The final answer as a validated object: a JSON Schema file (.json) or a pydantic model "
        "(path/to/file.py:Model or package.module:Model).")
    trace: bool = Field(False, description="Emit OpenTelemetry spans (also on when OTEL_EXPORTER_OTLP_ENDPOINT "
                        "or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set).")
    trace_endpoint: str | None = Field(None, pattern=r"^https?://", description="OTLP/HTTP endpoint for spans "
                                       "(default: the OTEL_EXPORTER_OTLP_* variables, else http://127.0.0.1:6006, "
                                       "where Phoenix listens).")
    trace_project: str = Field("ponder", min_length=1, max_length=128,
                               description="Project name the spans are filed under (Phoenix, Langfuse).")

    @model_validator(mode="after")
    def _known_servers(self) -> EcosystemSettings:
        unknown = [n for n in self.mcp_servers if n not in self.mcp.servers]
        if unknown:
            known = ", ".join(self.mcp.servers) or "none configured: add [mcp.servers.NAME] to ponder.toml"
            raise ValueError(f"unknown MCP server(s) {', '.join(unknown)}; known: {known}")
        return self


class Settings(  # bases in reverse of the field order: paths, model, llamacpp, openai, agent, ..., memory, ecosystem
    EcosystemSettings, MemorySettings, SearchSettings, SandboxSettings, AgentSettings, OpenAISettings,
    LlamaCppSettings, BaseSettings,
):
    """All of ponder's settings: every group in one flat object.

    Every field can be set in ``ponder.toml`` (flat keys) or as ``PONDER_<NAME>``. A function that needs one
    group takes that group's type (``open_sandbox(settings: SandboxSettings)``); a ``Settings`` fits every group.
    """

    model_config = SettingsConfigDict(env_prefix="PONDER_", extra="forbid", validate_default=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order sources: explicit overrides > env > TOML > defaults."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
        return (init_settings, env_settings, toml)


def corpus_path(settings: SearchSettings) -> Path:
    """The search corpus: ``settings.search_corpus`` or the HotpotQA corpus in the data directory."""
    return settings.search_corpus or settings.data_dir / "hotpotqa" / "corpus.jsonl"


def load_settings(**overrides: Any) -> Settings:
    """Build settings; ``overrides`` (e.g. CLI flags) win over every other source. ``None`` values are ignored.

    Raises:
        ConfigError: when a value is invalid, with one line per problem.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read settings file {config_file()}: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None


def _problem(err: ErrorDetails) -> str:
    """One validation error as ``field: what is wrong``; a value outside a choice names the value and the choices."""
    where = ".".join(str(p) for p in err["loc"]) or "settings"
    if err["type"] == "literal_error":
        return f"{where}: unknown value {err['input']!r}; expected {err.get('ctx', {}).get('expected', '')}"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"
