"""Chat turns are traced: one ``chat turn`` span per turn, with the thread as its OpenInference session."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def test_each_turn_is_a_span_of_the_threads_session(session_for, spans: InMemorySpanExporter) -> None:
    session, _ = session_for(["Thought: easy\nFinal Answer: 4", "Thought: easy\nFinal Answer: 6"])
    session.ask("What is 2+2?")
    session.ask("And 3+3?")
    finished = spans.get_finished_spans()
    turns = [s for s in finished if s.name == "chat turn"]
    assert [t.parent for t in turns] == [None, None]
    assert [t.attributes["session.id"] for t in turns] == [session.thread_id] * 2
    assert [t.attributes["ponder.turn"] for t in turns] == [1, 2]
    assert [t.attributes["output.value"] for t in turns] == ["4", "6"]
    for turn in turns:
        agents = [s for s in finished if s.parent is not None and s.parent.span_id == turn.context.span_id]
        assert [a.name for a in agents] == ["invoke_agent react"]
    assert len([s for s in finished if s.attributes.get("openinference.span.kind") == "LLM"]) == 2


def test_a_streamed_reply_under_two_traced_wrappers_is_one_span(spans: InMemorySpanExporter) -> None:
    from ponder.chat.streaming import StreamingModel
    from ponder.models.base import GenerationParams
    from ponder.models.scripted import ScriptedModel
    from ponder.models.traced import traced

    pieces: list[str] = []
    model = traced(StreamingModel(traced(ScriptedModel(["a b c"])), pieces.append))
    [completion] = model.generate([{"role": "user", "content": "q"}], GenerationParams())
    assert completion.text == "a b c" and "".join(pieces) == "a b c"
    (call,) = spans.get_finished_spans()
    assert call.attributes["output.value"] == "a b c"
