"""core/tracing.py and core/spans.py: off means no spans; on, an agent run's span tree and its attributes."""

from __future__ import annotations

import logging
import socket
import time

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ponder.agents.runner import run_agent
from ponder.core import tracing
from ponder.core.settings import load_settings
from ponder.core.tracing import (
    configure_tracing,
    current_trace_id,
    flush_tracing,
    shutdown_tracing,
    span,
    traces_url,
    tracing_enabled,
)
from ponder.models.scripted import ScriptedModel
from ponder.tools.calculator import calculator_tool

CALC = ["Thought: multiply\nAction: calculator\nAction Input: 17 * 3", "Thought: done\nFinal Answer: 51"]



@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.OTEL_ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in exporter.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


def test_off_by_default_records_nothing_and_changes_no_record(no_otel_env: None, tmp_path) -> None:
    settings = load_settings(out_dir=tmp_path)
    assert configure_tracing(settings) is False
    assert not tracing_enabled()
    with span("x") as current:
        assert not current.is_recording()
        assert current_trace_id() is None
    traj = run_agent("17*3?", agent="react", settings=settings, model=ScriptedModel(CALC),
                     tools=[calculator_tool()], write=False)
    assert traj.final_answer == "51"
    assert "trace_id" not in traj.metadata


def test_otel_endpoint_variable_turns_tracing_on(monkeypatch: pytest.MonkeyPatch, no_otel_env: None) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert tracing.wants_tracing(load_settings())
    assert traces_url("http://h:6006/") == "http://h:6006/v1/traces"
    assert traces_url("https://h/api/public/otel/v1/traces") == "https://h/api/public/otel/v1/traces"


def test_agent_run_span_tree_and_attributes(spans: InMemorySpanExporter) -> None:
    traj = run_agent("What is 17 times 3?", agent="react", model=ScriptedModel(CALC), tools=[calculator_tool()],
                     settings=load_settings(temperature=0.3, seed=7, max_tokens=64), write=False)
    named = by_name(spans)
    (root,) = named["invoke_agent react"]
    steps = named["step 1"] + named["step 2"]
    (tool,) = named["execute_tool calculator"]
    llm = named["chat scripted"]
    assert root.parent is None and len(llm) == 2
    assert {s.parent.span_id for s in steps} == {root.context.span_id}
    assert tool.parent.span_id == steps[0].context.span_id
    assert [c.parent.span_id for c in llm] == [s.context.span_id for s in steps]
    assert traj.metadata["trace_id"] == f"{root.context.trace_id:032x}"
    assert root.attributes["openinference.span.kind"] == "AGENT"
    assert root.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert root.attributes["output.value"] == "51" and root.attributes["ponder.status"] == "solved"
    assert root.resource.attributes["openinference.project.name"] == "test"
    first = llm[0].attributes
    assert first["openinference.span.kind"] == "LLM" and first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.request.temperature"] == 0.3 and first["gen_ai.request.seed"] == 7
    assert first["gen_ai.request.max_tokens"] == 64
    assert first["llm.token_count.completion"] == traj.steps[0].completion_tokens > 0
    assert first["gen_ai.usage.input_tokens"] == first["llm.token_count.prompt"] == traj.steps[0].prompt_tokens
    assert first["llm.token_count.total"] == traj.steps[0].prompt_tokens + traj.steps[0].completion_tokens
    assert first["gen_ai.response.finish_reasons"] == ("stop",)
    assert first["llm.input_messages.0.message.role"] == "system"
    assert tool.attributes["openinference.span.kind"] == "TOOL" and tool.attributes["tool.name"] == "calculator"
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    assert tool.attributes["input.value"] == "17 * 3" and tool.attributes["output.value"] == "51"
    assert "error.type" not in tool.attributes


def test_failed_tool_call_and_long_values(spans: InMemorySpanExporter) -> None:
    long_input = "1+" * 5000 + "x"  # too long and not arithmetic: the calculator refuses it
    model = ScriptedModel([f"Thought: t\nAction: calculator\nAction Input: {long_input}", "Final Answer: 0"])
    run_agent("q", agent="react", model=model, tools=[calculator_tool()], settings=load_settings(), write=False)
    (tool,) = by_name(spans)["execute_tool calculator"]
    assert tool.attributes["error.type"] == "tool_error"
    assert not tool.status.is_ok
    assert len(tool.attributes["input.value"]) < tracing.MAX_VALUE_CHARS + 50
    assert tool.attributes["input.value"].endswith("more characters]")


def test_exception_is_recorded_with_its_type(spans: InMemorySpanExporter) -> None:
    with pytest.raises(ZeroDivisionError), span("boom"):
        assert current_trace_id() is not None
        _ = 1 / 0
    (boom,) = spans.get_finished_spans()
    assert boom.attributes["error.type"] == "ZeroDivisionError" and not boom.status.is_ok


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_collector_neither_fails_nor_hangs_and_warns_once(
        no_otel_env: None, caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(trace=True, trace_endpoint=f"http://127.0.0.1:{_closed_port()}")
    try:
        assert configure_tracing(settings) is True
        assert configure_tracing(settings) is True  # idempotent
        with caplog.at_level(logging.WARNING, logger="ponder.tracing"):
            for _ in range(2):
                traj = run_agent("17*3?", agent="react", model=ScriptedModel(CALC), tools=[calculator_tool()],
                                 settings=settings, write=False)
                assert traj.final_answer == "51" and len(traj.metadata["trace_id"]) == 32
                start = time.monotonic()
                flush_tracing()
                assert time.monotonic() - start < tracing.FLUSH_TIMEOUT_S + 1
        warnings = [r for r in caplog.records if r.name == "ponder.tracing" and r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "could not export" in warnings[0].getMessage()
    finally:
        shutdown_tracing()
    assert not tracing_enabled()


def test_the_export_warning_shows_under_a_quiet_root_logger(no_otel_env: None) -> None:
    """``ponder eval`` sets the root logger to ERROR (a quiet progress line): --trace's warning must still show."""
    root, tracing_log = logging.getLogger(), logging.getLogger("ponder.tracing")
    saved = root.level, tracing_log.level
    root.setLevel(logging.ERROR)
    try:
        assert configure_tracing(load_settings(trace=True, trace_endpoint=f"http://127.0.0.1:{_closed_port()}"))
        assert tracing_log.isEnabledFor(logging.WARNING)
    finally:
        shutdown_tracing()
        root.setLevel(saved[0])
        tracing_log.setLevel(saved[1])
