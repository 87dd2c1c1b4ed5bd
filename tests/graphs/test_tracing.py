"""graphs/tracing.py: strategy spans (self-consistency samples and vote, best-of-N) nest across sample threads."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ponder.core.settings import load_settings
from ponder.graphs.self_consistency.graph import SCConfig
from ponder.graphs.self_consistency.run import run_self_consistency
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.best_of_n import BestOfN
from ponder.graphs.strategies.single import Single
from ponder.graphs.verifiers.base import Score, Trace, VerifyContext
from ponder.models.scripted import ScriptedModel

ANSWERS = {0: "41", 1: "42", 2: "42"}


def by_seed(messages, params) -> str:
    return f"Thought: multiply.\nFinal Answer: {ANSWERS[params.seed]}"



def children(all_spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[ReadableSpan]:
    return sorted((s for s in all_spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
                  key=lambda s: s.start_time)


def test_self_consistency_samples_and_vote_nest_under_the_strategy(spans: InMemorySpanExporter, tmp_path) -> None:
    result = run_self_consistency("6*7?", config=SCConfig(samples=3), agent="react", settings=load_settings(seed=0),
                                  model=ScriptedModel(by_seed, continuous=True), write=False)
    assert result.final_answer == "42"
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.parent is None]
    assert root.name == "self_consistency" and root.attributes["openinference.span.kind"] == "CHAIN"
    kids = children(finished, root)
    assert sorted(k.name for k in kids) == ["sample 0", "sample 1", "sample 2", "vote"]
    for sample in (k for k in kids if k.name.startswith("sample")):
        (agent,) = children(finished, sample)
        assert agent.name == "invoke_agent react"
        assert [c.name for c in children(finished, agent)] == ["step 1"]
    (vote,) = [k for k in kids if k.name == "vote"]
    assert vote.attributes["ponder.vote.answers"] == ("42", "41")
    assert vote.attributes["ponder.vote.counts"] == (2, 1)
    assert root.attributes["ponder.samples_run"] == 3 and root.attributes["output.value"] == "42"
    trace_ids = {s.trajectory.metadata["trace_id"] for s in result.samples}
    assert trace_ids == {f"{root.context.trace_id:032x}"}


class Prefer41:
    name = "prefer41"

    def score(self, trace: Trace, ctx: VerifyContext) -> Score:
        return Score(value=0.9 if trace.final_answer == "41" else 0.1)


def test_best_of_n_is_one_chain_with_its_samples(spans: InMemorySpanExporter) -> None:
    ctx = StrategyContext(settings=load_settings(seed=0), model=ScriptedModel(by_seed, continuous=True),
                          answer_kind="number")
    outcome = BestOfN(Single(), 3, Prefer41()).run("6*7?", ctx)
    assert outcome.answer == "41"
    finished = spans.get_finished_spans()
    (root,) = [s for s in finished if s.parent is None]
    assert root.name == "best_of_n" and root.attributes["output.value"] == "41"
    assert root.attributes["ponder.scores"] == (0.9, 0.1, 0.1) and root.attributes["ponder.picked"] == 0
    assert sorted(k.name for k in children(finished, root)) == ["sample 0", "sample 1", "sample 2"]
