"""Options shared by ``run``, ``chat`` and ``eval``: MCP servers, the tool-calling protocol, tracing, output schema.

Each option only sets a setting (:class:`~ponder.core.settings.EcosystemSettings`); :func:`ecosystem_overrides`
turns the given ones into ``load_settings`` overrides, so the command line, ``ponder.toml`` and ``PONDER_*``
variables all reach the same code.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ponder.core.types import ToolProtocol

#: ``--mcp NAME`` (repeatable, or comma-separated): MCP servers from ``[mcp.servers.NAME]`` whose tools join the agent.
McpOpt = Annotated[list[str] | None, typer.Option(
    "--mcp", metavar="NAME", help="Use the tools of this MCP server ([mcp.servers.NAME] in ponder.toml); "
    "repeat the option or separate names with commas.")]
#: ``--tool-calling``: the ``tool_calling`` setting.
ToolCallingOpt = Annotated[ToolProtocol | None, typer.Option(
    "--tool-calling", help="How ReAct calls tools: auto (native function calling when the server supports it), "
    "native, or text.")]
#: ``--trace``: the ``trace`` setting.
TraceOpt = Annotated[bool | None, typer.Option(
    "--trace/--no-trace", help="Send OpenTelemetry spans of the run (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, "
    "else http://127.0.0.1:6006, Phoenix's default).", show_default=False)]
#: ``--output-schema``: the ``output_schema`` setting.
OutputSchemaOpt = Annotated[str | None, typer.Option(
    "--output-schema", metavar="FILE", help="Return the final answer as a validated object: a JSON Schema file "
    "(.json) or a pydantic model (file.py:Model or package.module:Model).")]


def mcp_names(values: list[str] | None) -> list[str] | None:
    """``--mcp a --mcp b,c`` as ``["a", "b", "c"]`` (``None`` when the option was not given)."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def ecosystem_overrides(*, mcp: list[str] | None = None, tool_calling: str | None = None,
                        trace: bool | None = None, output_schema: str | None = None) -> dict[str, Any]:
    """The ``load_settings`` overrides of the options that were given (``None`` values are left to settings)."""
    return {"mcp_servers": mcp_names(mcp), "tool_calling": tool_calling, "trace": trace,
            "output_schema": output_schema}
