"""models/traced.py: the traced wrapper is transparent, records each call once, and is absent while tracing is off."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ponder.models.base import GenerationParams, ModelBackend
from ponder.models.batching import MicroBatcher
from ponder.models.scripted import ScriptedModel
from ponder.models.spec import load_model
from ponder.models.traced import TracedModel, traced


def test_off_returns_the_backend_itself(tmp_path) -> None:
    model = ScriptedModel(["a"])
    assert traced(model) is model
    script = tmp_path / "s.jsonl"
    script.write_text('"a"\n')
    assert not isinstance(load_model(f"scripted:{script}"), TracedModel)


def test_wrapper_is_transparent(spans: InMemorySpanExporter) -> None:
    inner = ScriptedModel(["one two three"], spec="scripted:x", context_window=99)
    model = traced(inner)
    assert isinstance(model, TracedModel) and isinstance(model, ModelBackend)
    assert traced(model) is model
    assert (model.spec, model.backend_name, model.real) == ("scripted:x", "scripted", False)
    assert model.capabilities is inner.capabilities and model.capabilities.context_window == 99
    assert model.count_tokens([{"role": "user", "content": "a b"}]) == inner.count_tokens(
        [{"role": "user", "content": "a b"}])
    [completion] = model.generate([{"role": "user", "content": "hi"}], GenerationParams(max_tokens=2))
    assert completion.text == "one two" and completion.finish_reason == "length"
    (call,) = spans.get_finished_spans()
    assert call.name == "chat scripted:x"
    assert call.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert call.attributes["llm.token_count.completion"] == 2
    assert call.attributes["output.value"] == "one two"


def test_stream_and_option_logprobs_are_spans(spans: InMemorySpanExporter) -> None:
    model = traced(ScriptedModel(["x y z"], option_logprobs=[[-0.1, -2.0]]))
    pieces = model.stream([{"role": "user", "content": "q"}], GenerationParams())
    assert "".join(pieces) == "x y z"
    scores = model.option_logprobs([{"role": "user", "content": "q"}], ["yes", "no"])
    assert scores.logprobs == [-0.1, -2.0]
    stream, options = spans.get_finished_spans()
    assert stream.attributes["ponder.stream"] is True and stream.attributes["output.value"] == "x y z"
    assert options.attributes["ponder.operation"] == "option_logprobs"
    assert '"yes": -0.1' in options.attributes["output.value"]


def test_a_traced_backend_under_a_batcher_records_each_call_once(spans: InMemorySpanExporter) -> None:
    model = traced(MicroBatcher(traced(ScriptedModel(["a", "b"]))))
    model.generate([{"role": "user", "content": "q"}], GenerationParams())
    model.generate_batch([[{"role": "user", "content": "q"}]], GenerationParams())
    model.option_logprobs([{"role": "user", "content": "q"}], ["yes", "no"])
    names = [s.name for s in spans.get_finished_spans()]
    assert names == ["chat scripted", "chat scripted", "chat scripted"]
    assert spans.get_finished_spans()[1].attributes["ponder.batch_size"] == 1


def test_a_failing_call_is_an_error_span(spans: InMemorySpanExporter) -> None:
    model = traced(ScriptedModel([]))
    with pytest.raises(Exception, match="exhausted"):
        model.generate([{"role": "user", "content": "q"}], GenerationParams())
    (call,) = spans.get_finished_spans()
    assert call.attributes["error.type"] == "ScriptExhaustedError" and not call.status.is_ok
